"""The AWS IAM query API (``aws iam``, boto3's IAM client, Terraform): see api.py."""
