// Duralane on Azure: one Function App per lane from the same package, identity
// and RBAC only (no keys anywhere), in one region or two.
//
// Deploy with `azd up`, or `az deployment group create --template-file
// bicep/main.bicep --parameters bicep/<environment>.bicepparam`.
targetScope = 'resourceGroup'

metadata name = 'Duralane'
metadata description = 'Job scheduler on Azure Durable Functions: lanes high, normal and low, each its own Function App and Service Bus queue.'

// ---------------------------------------------------------------- naming, place

@description('Required. Short environment name (dev, prod, ...) used in every resource name and in the azd-env-name tag. 1 to 12 lowercase letters or digits.')
@minLength(1)
@maxLength(12)
param environmentName string

@description('Optional. Azure region of the primary stamp, the monitoring resources and the Cosmos DB write region. Default: the resource group\'s region.')
param location string = resourceGroup().location

@description('Optional. Azure region of the secondary stamp. Empty means single-region. When set: Cosmos DB replicates to it, a second set of apps and a second Service Bus namespace run there, and Front Door fails the HTTP API over to it. Default: empty.')
param secondaryLocation string = ''

@description('Optional. Tags added to every resource. Default: none.')
param tags object = {}

// ---------------------------------------------------------------- hosting

@description('Optional. How the lane apps are hosted. FlexConsumption scales to zero and bills per execution; Dedicated runs a Linux App Service plan per app that is always on. Default: FlexConsumption.')
@allowed([
  'FlexConsumption'
  'Dedicated'
])
param hostingPlan string = 'FlexConsumption'

@description('Optional. App Service plan SKU when hostingPlan is Dedicated; ignored otherwise. Default: P0v3.')
@allowed([
  'B1'
  'P0v3'
  'P1v3'
])
param dedicatedSkuName string = 'P0v3'

@description('Optional. Memory per instance on Flex Consumption, in MB. Default: 2048.')
@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int = 2048

@description('Optional. Most instances each lane app scales out to on Flex Consumption, per region. Default: 100.')
@minValue(1)
@maxValue(1000)
param flexMaximumInstanceCount int = 100

@description('Optional. Always-ready instances of the high lane\'s Durable Functions group on Flex Consumption, so the first job after an idle period starts without a cold start (these bill at rest). Default: 0.')
@minValue(0)
@maxValue(10)
param highLaneAlwaysReadyInstances int = 0

@description('Optional. Python version of the Functions worker. Default: 3.11.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Optional. Lane whose app serves the HTTP API behind Front Door (every app carries the same routes). Default: normal.')
@allowed([
  'high'
  'normal'
  'low'
])
param apiLane string = 'normal'

// ---------------------------------------------------------------- data

@description('Optional. Cosmos DB database name, passed to the apps as DURALANE_COSMOS_DATABASE. Default: duralane.')
param cosmosDatabaseName string = 'duralane'

@description('Optional. Autoscale ceiling of the shared database throughput, in RU/s, used only in multi-region deployments (single-region accounts are serverless). Billing at rest is a tenth of this, per region. Default: 1000.')
@minValue(1000)
@maxValue(100000)
param cosmosAutoscaleMaxThroughput int = 1000

@description('Optional. How long finished jobs are kept, in seconds; passed to the apps as DURALANE_FINISHED_JOB_TTL_SECONDS. Default: 2592000 (30 days).')
@minValue(60)
param finishedJobTtlSeconds int = 2592000

@description('Optional. Blob container for claim-check payloads, passed to the apps as DURALANE_BLOB_CONTAINER. Default: duralane-payloads.')
param payloadContainerName string = 'duralane-payloads'

@description('Optional. Redundancy of the stamp storage accounts. Default: Standard_LRS.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param storageSkuName string = 'Standard_LRS'

// ---------------------------------------------------------------- lanes, queues

@description('Optional. Start deadline of the high lane, in seconds: how long a submitted job may wait for its first attempt. Also the start-lag alert threshold. Default: 1.')
@minValue(1)
param deadlineHighSeconds int = 1

@description('Optional. Start deadline of the normal lane, in seconds. Also the start-lag alert threshold. Default: 60.')
@minValue(1)
param deadlineNormalSeconds int = 60

@description('Optional. Start deadline of the low lane, in seconds. Also the start-lag alert threshold. Default: 3600.')
@minValue(1)
param deadlineLowSeconds int = 3600

@description('Optional. Service Bus tier. Standard is the cheapest tier with duplicate detection; Premium adds isolation and zone redundancy at a fixed hourly price. Default: Standard.')
@allowed([
  'Standard'
  'Premium'
])
param serviceBusSkuName string = 'Standard'

@description('Optional. Deliveries of one message before Service Bus moves it to the queue\'s dead-letter subqueue. Default: 10.')
@minValue(1)
@maxValue(100)
param queueMaxDeliveryCount int = 10

@description('Optional. Peek-lock duration of queue messages, ISO 8601 (at most PT5M). Default: PT1M.')
param queueLockDuration string = 'PT1M'

@description('Optional. Window in which Service Bus drops a message whose MessageId it has already seen, ISO 8601. Default: PT10M.')
param queueDuplicateDetectionWindow string = 'PT10M'

@description('Optional. Time to live of queue messages, ISO 8601; expired messages are dead-lettered. Default: P14D.')
param queueMessageTimeToLive string = 'P14D'

// ---------------------------------------------------------------- operations

@description('Optional. Log Analytics retention, in days. Default: 30.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Optional. Resource ID of an existing action group that every alert notifies. Empty creates the alerts without notifications. Default: empty.')
param actionGroupId string = ''

@description('Optional. Failed function invocations (requests rows with success false in Application Insights) per 15 minutes above which the function-failure alert fires. Default: 5.')
@minValue(0)
param functionFailureAlertThreshold int = 5

@description('Optional. Create the Chaos Studio experiment that stops the primary region\'s apps, to drill failover. Only used when secondaryLocation is set. Default: true.')
param enableChaosExperiment bool = true

@description('Optional. How long the chaos experiment keeps the primary apps stopped, ISO 8601. Default: PT10M.')
param chaosStopDuration string = 'PT10M'

// ---------------------------------------------------------------- derived

var lanes = [
  'high'
  'normal'
  'low'
]
var isMultiRegion = !empty(secondaryLocation)
var stampLocations = isMultiRegion ? [location, secondaryLocation] : [location]
var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'duralane'
})
var laneDeadlines = {
  high: deadlineHighSeconds
  normal: deadlineNormalSeconds
  low: deadlineLowSeconds
}

// ---------------------------------------------------------------- resources

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    namePrefix: 'dl-${environmentName}'
    retentionInDays: logRetentionDays
    tags: allTags
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    accountName: 'cosmos-dl-${environmentName}-${token}'
    locations: stampLocations
    databaseName: cosmosDatabaseName
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
    tags: allTags
  }
}

module stamps 'modules/stamp.bicep' = [for (stampLocation, i) in stampLocations: {
  name: 'stamp-${i}'
  params: {
    location: stampLocation
    isPrimary: i == 0
    namePrefix: 'dl-${environmentName}-${i == 0 ? 'p' : 's'}'
    storageAccountName: 'stdl${token}${i}'
    serviceBusNamespaceName: 'sb-dl-${environmentName}-${token}-${i}'
    lanes: lanes
    tags: allTags
    hostingPlan: hostingPlan
    dedicatedSkuName: dedicatedSkuName
    flexInstanceMemoryMB: flexInstanceMemoryMB
    flexMaximumInstanceCount: flexMaximumInstanceCount
    highLaneAlwaysReadyInstances: highLaneAlwaysReadyInstances
    pythonVersion: pythonVersion
    storageSkuName: storageSkuName
    payloadContainerName: payloadContainerName
    serviceBusSkuName: serviceBusSkuName
    queueMaxDeliveryCount: queueMaxDeliveryCount
    queueLockDuration: queueLockDuration
    queueDuplicateDetectionWindow: queueDuplicateDetectionWindow
    queueMessageTimeToLive: queueMessageTimeToLive
    cosmosAccountName: cosmos.outputs.accountName
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    appInsightsName: monitoring.outputs.appInsightsName
    finishedJobTtlSeconds: finishedJobTtlSeconds
    laneDeadlines: laneDeadlines
    apiLane: apiLane
    dispatcherPreferredRegion: isMultiRegion ? location : ''
  }
}]

module frontDoor 'modules/frontdoor.bicep' = if (isMultiRegion) {
  name: 'frontdoor'
  params: {
    namePrefix: 'dl-${environmentName}-${token}'
    originHostNames: [for i in range(0, length(stampLocations)): stamps[i].outputs.apiHostName]
    tags: allTags
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    namePrefix: 'dl-${environmentName}'
    appInsightsId: monitoring.outputs.appInsightsId
    serviceBusNamespaceIds: [for i in range(0, length(stampLocations)): stamps[i].outputs.serviceBusNamespaceId]
    actionGroupId: actionGroupId
    lanes: lanes
    laneDeadlines: laneDeadlines
    functionFailureThreshold: functionFailureAlertThreshold
    tags: allTags
  }
}

module chaos 'modules/chaos.bicep' = if (isMultiRegion && enableChaosExperiment) {
  name: 'chaos'
  params: {
    location: location
    experimentName: 'chaos-dl-${environmentName}-stop-primary'
    siteNames: stamps[0].outputs.appNames
    stopDuration: chaosStopDuration
    tags: allTags
  }
}

// ---------------------------------------------------------------- outputs (nothing secret)

@description('Region of the primary stamp; azd reads it as AZURE_LOCATION.')
output AZURE_LOCATION string = location

@description('Base URL of the HTTP API: Front Door in multi-region deployments, else the API lane\'s app.')
output API_BASE_URL string = isMultiRegion ? 'https://${frontDoor.outputs.endpointHostName}' : 'https://${stamps[0].outputs.apiHostName}'

@description('Names of the primary stamp\'s lane apps, high, normal, low in that order.')
output PRIMARY_APP_NAMES array = stamps[0].outputs.appNames

@description('Names of the secondary stamp\'s lane apps; empty when single-region.')
output SECONDARY_APP_NAMES array = isMultiRegion ? stamps[1].outputs.appNames : []

@description('Cosmos DB account endpoint (identity access only).')
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint

@description('Application Insights resource, for the queries under queries/.')
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
