output "join_token" {
  description = "Pass to `stratum node --join-token` on each device."
  value       = stratum_join_token.this.token
  sensitive   = true
}

output "enrolled" {
  description = "How many devices used the join token so far."
  value       = stratum_join_token.this.uses
}

output "nodes" {
  description = "Devices of this fleet known to the control plane."
  value       = data.stratum_nodes.members.nodes
}
