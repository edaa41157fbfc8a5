output "bucket_name" {
  value = aws_s3_bucket.data.id
}

output "storage_root" {
  description = "The nodes' storage.root."
  value       = "s3://${aws_s3_bucket.data.id}/${local.prefix}"
}

output "pod_role_arn" {
  value = aws_iam_role.pods.arn
}

output "kms_key_arn" {
  value = aws_kms_key.data.arn
}

output "helm_values" {
  description = "Values for the Helm chart: save as a file and pass it after values-byoc.yaml."
  value = yamlencode({
    serviceAccount = {
      name        = var.service_account
      annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.pods.arn }
    }
    storage = {
      root   = "s3://${aws_s3_bucket.data.id}/${local.prefix}"
      region = data.aws_region.current.name
    }
  })
}
