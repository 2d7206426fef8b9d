# A token for the edge boxes of the north site: at most 10 nodes, valid for a day.
resource "stratum_join_token" "north_edge" {
  name        = "north-edge"
  tier        = "edge"
  labels      = { zone = "north", "example.com/site" = "plant-3" }
  ttl         = "24h"
  max_uses    = 10
  description = "edge boxes at plant 3"
}

# Hand the secret to the machines that enroll, e.g.
#   stratum node --server cp.example.com:7443 --join-token "$(terraform output -raw north_edge_token)" --name box-1 --data-dir /var/lib/stratum-node
output "north_edge_token" {
  value     = stratum_join_token.north_edge.token
  sensitive = true
}
