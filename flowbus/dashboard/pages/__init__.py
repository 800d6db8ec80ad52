"""The dashboard's pages, one module per page (with the forms it posts)."""
