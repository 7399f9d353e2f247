"""The API's vocabulary: request and response models, by concept."""

#: Where the API is served, below a host's base URL.
API_PREFIX = "/himalia/api/v1"
