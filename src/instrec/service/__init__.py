"""The REST API and web page (``instrec serve``)."""
