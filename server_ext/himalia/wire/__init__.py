"""The API's vocabulary: request and response models, by concept."""
