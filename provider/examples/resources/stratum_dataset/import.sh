# A dataset is imported by its name.
terraform import stratum_dataset.traffic traffic
