"""Task plugins: discovered through the ``egokit.tasks`` entry-point group and loaded lazily."""
