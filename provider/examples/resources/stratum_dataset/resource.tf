# A CSV file beside the configuration. terraform plan hashes it: editing the file
# shows as an update, and apply loads it as the next version.
resource "stratum_dataset" "traffic" {
  name   = "traffic"
  source = "file://data/traffic.csv"
  target = "congested"
}

# The rows of a SQL query (SQLite here; postgresql://host/db works the same way).
# New rows in the database are not a change Terraform sees: reload them with
#   terraform apply -replace=stratum_dataset.readings
resource "stratum_dataset" "readings" {
  name   = "readings"
  source = "sqlite:///data/sensors.db"
  query  = "SELECT sensor, hour, value FROM readings WHERE value IS NOT NULL"
}

output "traffic_columns" {
  value = { for c in stratum_dataset.traffic.columns : c.name => c.type }
}
