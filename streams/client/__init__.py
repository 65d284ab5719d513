"""The client side: the HTTP client library (sync and async), the folder uploader and the demo."""
