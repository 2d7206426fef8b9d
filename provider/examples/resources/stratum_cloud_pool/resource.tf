# Burst capacity on EC2: none kept running, up to 10 VMs when edge and fog are full.
# The cloud keys live in Vault (KV v2) at secret/stratum/aws as `key` and `secret`; the control plane
# reads them with VAULT_ADDR and VAULT_TOKEN (or VAULT_ROLE_ID and VAULT_SECRET_ID).
resource "stratum_cloud_pool" "burst" {
  name        = "burst"
  driver      = "ec2"
  region      = "us-east-1"
  size        = "t3.large"
  image       = "ami-12c6146b" # an image with Python 3.11 (and ideally stratum already installed)
  credentials = "secret/stratum/aws"
  min_nodes   = 0
  max_nodes   = 10
  tier        = "cloud"
  labels      = { zone = "us-east-1" }
  idle_grace  = "10m"
  server      = "cp.example.com:7443" # where the VMs reach the control plane
}

output "burst_price_per_hour" {
  value = stratum_cloud_pool.burst.price_per_hour
}
