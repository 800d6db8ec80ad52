"""The service layer: apply engine inputs to stored instances, one transaction at a time."""
