// Production: two regions behind Front Door, one always-ready instance on the
// high lane so its one-second deadline holds after idle periods, alerts to the
// on-call action group (set ACTION_GROUP_ID in the deploy environment).
using 'main.bicep'

param environmentName = 'prod'
param location = 'westeurope'
param secondaryLocation = 'northeurope'
param hostingPlan = 'FlexConsumption'
param highLaneAlwaysReadyInstances = 1
param flexMaximumInstanceCount = 100
param storageSkuName = 'Standard_ZRS'
param logRetentionDays = 90
param actionGroupId = readEnvironmentVariable('ACTION_GROUP_ID', '')
param enableChaosExperiment = true
