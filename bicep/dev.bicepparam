// Development: one region, scale to zero, no always-ready instances, alerts
// without notifications. Cheapest shape that still runs everything.
using 'main.bicep'

param environmentName = 'dev'
param location = 'westeurope'
param secondaryLocation = ''
param hostingPlan = 'FlexConsumption'
param highLaneAlwaysReadyInstances = 0
param flexMaximumInstanceCount = 10
param logRetentionDays = 30
param actionGroupId = ''
