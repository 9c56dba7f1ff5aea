"""Training/evaluation machinery shared by the pretraining recipe and the task plugins."""
