"""The Kubernetes operator: thin kopf handlers over pure planning, Job specs, status and metrics."""
