"""Input tables: catalogs, studies, validation, readers and the registered datasets."""
