"""Card templates (model and dataset cards), installed as the package data of ``aha.hub_cards``."""
