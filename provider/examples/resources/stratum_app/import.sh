# An app is imported by its name.
terraform import stratum_app.broker broker
