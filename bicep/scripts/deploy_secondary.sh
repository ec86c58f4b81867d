#!/usr/bin/env sh
# azd postdeploy hook: deploy the package to the secondary region's lane apps.
# azd only deploys to one app per service, and those are the primary ones;
# single-region deployments have no secondary apps and this does nothing.
set -eu

names=$(printf '%s' "${SECONDARY_APP_NAMES:-[]}" | tr -d '[]" ' | tr ',' ' ')
if [ -z "$names" ]; then
    echo "single-region deployment: no secondary apps to deploy"
    exit 0
fi

package=$(mktemp -d)/duralane.zip
git archive --format=zip --output "$package" HEAD
for app in $names; do
    echo "deploying to $app"
    az functionapp deployment source config-zip \
        --resource-group "$AZURE_RESOURCE_GROUP" --name "$app" \
        --src "$package" --build-remote true
done
