"""EgoMQ for egokit (task ``mq``): dual features from ``egokit embed`` (official recipe egovlpv2-mq), a VSGN temporal
detection head (or egokit's anchor-free head, ``head_type=anchor-free``), official mAP / recall."""

from __future__ import annotations

from egokit_mq.task import MQOptions, MQTask, MQTraining

__all__ = ["MQOptions", "MQTask", "MQTraining"]
