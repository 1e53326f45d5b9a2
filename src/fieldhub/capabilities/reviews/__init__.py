"""Reviews: a business's reviews and its replies on a review site (Google Business Profile).

Today the capability adds the sync status the product guide describes under each reviews provider's connection:
`syncError` (in plain words, empty when all is well) and `needsReauth` (true when the grant must be signed in
again), read from the connection the health check and token refresh keep. Reviews themselves are to come.
"""
