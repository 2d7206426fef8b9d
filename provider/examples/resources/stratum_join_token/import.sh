# A join token is imported by its name.
terraform import stratum_join_token.north_edge north-edge
