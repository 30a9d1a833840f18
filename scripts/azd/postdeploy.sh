#!/bin/sh
# azd postdeploy hook (azure.yaml). azd has deployed the `api` service to the primary region's
# Function App. This script:
#  1. publishes the same package to every other region's app (AZURE_FUNCTION_APP_NAMES);
#  2. on the first deploy, waits for the ingesting app's `blobs_extension` system key (it exists
#     once the host has indexed the Event Grid blob trigger), then re-provisions with
#     DOCGATE_BLOB_WEBHOOK=true so Bicep creates the Event Grid subscription to the webhook.
# Needs the Azure CLI (az), signed in to the same subscription as azd.
set -eu

for tool in az python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "postdeploy: $tool is required (README: Deploy to Azure)"; exit 1; }
done

names=$(python3 -c 'import json, os; print(" ".join(json.loads(os.environ["AZURE_FUNCTION_APP_NAMES"])[1:]))')
if [ -n "$names" ]; then
  package="${TMPDIR:-/tmp}/docgate-$$.zip"
  python3 scripts/azd/package.py "$package"
  for app in $names; do
    echo "postdeploy: publishing to $app"
    az functionapp deployment source config-zip -g "$AZURE_RESOURCE_GROUP" -n "$app" \
      --src "$package" --build-remote true --timeout 900 >/dev/null
  done
  rm -f "$package"
fi

if [ "${DOCGATE_BLOB_WEBHOOK:-false}" != "true" ]; then
  echo "postdeploy: waiting for the blob trigger's webhook key on $DOCGATE_INGESTION_APP_NAME"
  tries=0
  until [ -n "$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$DOCGATE_INGESTION_APP_NAME" \
      --query systemKeys.blobs_extension -o tsv 2>/dev/null)" ]; do
    tries=$((tries + 1))
    [ "$tries" -le 30 ] || { echo "postdeploy: no blobs_extension key after 5 minutes"; exit 1; }
    sleep 10
  done
  azd env set DOCGATE_BLOB_WEBHOOK true
  azd provision --no-prompt
fi
echo "postdeploy: docgate is at $DOCGATE_URL"
