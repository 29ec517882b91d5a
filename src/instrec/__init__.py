"""instrec: recognise specific instances from 1-3 reference images each."""

__version__ = "0.1.0"
