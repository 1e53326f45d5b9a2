"""The browser pages and the JSON API: thin routes over core and hub services."""
