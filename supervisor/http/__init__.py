"""The HTTP interface served by ``email-service serve`` (CONTRACT.md, "HTTP interface").

``app.create_app`` builds the FastAPI application from a ``StatusSource``;
``server.HttpServer`` runs it with uvicorn in a thread of the service process.
"""
