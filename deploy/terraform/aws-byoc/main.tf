# The storage root of an omnigraph-cloud deployment in a customer's AWS account, and the IAM
# role its pods assume through IRSA. See README.md for what was and was not validated.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  prefix = var.prefix
}

# A key of our own: the customer can audit every use and revoke it.
resource "aws_kms_key" "data" {
  description         = "${var.name}: S3 objects of the omnigraph storage root"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.kms.json
  tags                = var.tags
}

resource "aws_kms_alias" "data" {
  name          = "alias/${var.name}-data"
  target_key_id = aws_kms_key.data.key_id
}

# The account administers the key; the pods' role uses it only through S3 (see pods below).
data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_111:a key policy's "*" resource is this key only; the account root must administer it or the key becomes unmanageable
  # checkov:skip=CKV_AWS_356:as above: in a key policy, "*" means the key the policy is attached to
  # checkov:skip=CKV_AWS_109:as above: AWS's default key policy, without which no IAM policy can grant use of the key
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket" "data" {
  # checkov:skip=CKV_AWS_144:cross-region replication is the customer's choice, not this module's
  # checkov:skip=CKV_AWS_18:access logging needs a log bucket the customer already runs; pass it in their own stack
  # checkov:skip=CKV2_AWS_62:the nodes poll; no consumer for event notifications
  bucket = var.bucket_name
  tags   = var.tags
}

# Versioning keeps overwritten and deleted objects recoverable for noncurrent_version_days.
resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.data]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.data.arn
    }
    # One KMS request per bucket-level key period instead of per object.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Plain HTTP is refused for everyone.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket     = aws_s3_bucket.data.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.data]
}

# IRSA: only the release's service account in its namespace may assume the role.
data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${var.service_account}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "pods" {
  name               = "${var.name}-pods"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = var.tags
}

# What a node does: read, write (conditional PUTs included) and delete objects under its
# prefix, list that prefix, and use the bucket's KMS key through S3. checks.py verifies that
# every object action here is on arn:aws:s3:::BUCKET/PREFIX/*.
data "aws_iam_policy_document" "pods" {
  statement {
    sid       = "ObjectsUnderPrefix"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["arn:aws:s3:::${var.bucket_name}/${local.prefix}/*"]
  }
  statement {
    sid       = "ListPrefix"
    actions   = ["s3:ListBucket"]
    resources = ["arn:aws:s3:::${var.bucket_name}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.prefix}/*", "${local.prefix}"]
    }
  }
  statement {
    sid       = "KeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.data.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.name}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "pods" {
  name   = "${var.name}-storage-root"
  role   = aws_iam_role.pods.id
  policy = data.aws_iam_policy_document.pods.json
}
