# A cloud pool is imported by its name.
terraform import stratum_cloud_pool.burst burst
