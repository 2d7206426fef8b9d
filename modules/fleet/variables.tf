variable "name" {
  description = "Fleet name; also the join token's name (lowercase letters, digits, '-')."
  type        = string
}

variable "tier" {
  description = "Tier of the fleet's devices: edge, fog or cloud."
  type        = string
}

variable "labels" {
  description = "Labels every device of the fleet gets."
  type        = map(string)
  default     = {}
}

variable "token_ttl" {
  description = "Lifetime of the join token, e.g. \"24h\"; null for no expiry."
  type        = string
  default     = null
}

variable "max_devices" {
  description = "How many devices may enroll with the token; 0 for unlimited."
  type        = number
  default     = 0
}
