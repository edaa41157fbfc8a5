variable "name" {
  description = "Prefix of every resource's name, e.g. omnigraph-acme."
  type        = string
}

variable "bucket_name" {
  description = "Name of the S3 bucket to create for the storage root."
  type        = string
}

variable "prefix" {
  description = "Key prefix of the storage root inside the bucket (no leading or trailing slash). The pods may touch nothing outside it."
  type        = string
  default     = "omnigraph"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$", var.prefix))
    error_message = "prefix must be non-empty, without leading or trailing slash."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_provider_url" {
  description = "Issuer URL of the EKS cluster's OIDC provider, without https://."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Helm release."
  type        = string
  default     = "omnigraph"
}

variable "service_account" {
  description = "Kubernetes service account of the pods (the chart's default is the release's full name)."
  type        = string
  default     = "omnigraph-cloud"
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept before it expires."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
