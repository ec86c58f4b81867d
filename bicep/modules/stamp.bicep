// One region's worth of Duralane: the task-hub storage account, the Service Bus
// namespace with one queue per lane, and one Function App per lane with its own
// identity and data-plane roles. main.bicep deploys one stamp per region.

@description('Required. Azure region of this stamp.')
param location string

@description('Required. True for the primary region\'s stamp; only its apps carry the azd-service-name tag that azd deploys to.')
param isPrimary bool

@description('Required. Prefix of the names of this stamp\'s apps, plans and identities, e.g. dl-dev-p.')
param namePrefix string

@description('Required. Name of this stamp\'s storage account (task hubs, claim-check payloads, deployment packages). 3 to 24 lowercase letters and digits.')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Required. Name of this stamp\'s Service Bus namespace.')
param serviceBusNamespaceName string

@description('Required. The lanes; one queue jobs-<lane> and one Function App per lane.')
param lanes array

@description('Optional. Tags added to every resource. Default: none.')
param tags object = {}

@description('Required. FlexConsumption or Dedicated; see main.bicep.')
@allowed([
  'FlexConsumption'
  'Dedicated'
])
param hostingPlan string

@description('Required. App Service plan SKU when hostingPlan is Dedicated.')
param dedicatedSkuName string

@description('Required. Memory per Flex Consumption instance, in MB.')
param flexInstanceMemoryMB int

@description('Required. Most instances per lane app on Flex Consumption.')
param flexMaximumInstanceCount int

@description('Required. Always-ready instances of the high lane\'s Durable Functions group on Flex Consumption.')
param highLaneAlwaysReadyInstances int

@description('Required. Python version of the Functions worker, e.g. 3.11.')
param pythonVersion string

@description('Required. Redundancy SKU of the storage account, e.g. Standard_LRS.')
param storageSkuName string

@description('Required. Blob container for claim-check payloads.')
param payloadContainerName string

@description('Required. Service Bus tier, Standard or Premium.')
param serviceBusSkuName string

@description('Required. Deliveries of one message before it is dead-lettered.')
param queueMaxDeliveryCount int

@description('Required. Peek-lock duration of queue messages, ISO 8601.')
param queueLockDuration string

@description('Required. Duplicate-detection window of the queues, ISO 8601.')
param queueDuplicateDetectionWindow string

@description('Required. Time to live of queue messages, ISO 8601.')
param queueMessageTimeToLive string

@description('Required. Name of the Cosmos DB account (same resource group).')
param cosmosAccountName string

@description('Required. Cosmos DB account endpoint, https://<account>.documents.azure.com:443/.')
param cosmosEndpoint string

@description('Required. Cosmos DB database name.')
param cosmosDatabaseName string

@description('Required. Name of the Application Insights component (same resource group).')
param appInsightsName string

@description('Required. How long finished jobs are kept, in seconds.')
param finishedJobTtlSeconds int

@description('Required. Start deadline per lane, in seconds, as an object keyed by lane.')
param laneDeadlines object

@description('Required. Lane whose app serves the HTTP API behind Front Door.')
param apiLane string

@description('Optional. Region whose schedule dispatcher takes the dispatcher lease back when healthy; empty in a single region. Default: empty.')
param dispatcherPreferredRegion string = ''

module storage 'storage.bicep' = {
  name: '${deployment().name}-storage'
  params: {
    location: location
    accountName: storageAccountName
    skuName: storageSkuName
    payloadContainerName: payloadContainerName
    lanes: lanes
    tags: tags
  }
}

module serviceBus 'servicebus.bicep' = {
  name: '${deployment().name}-servicebus'
  params: {
    location: location
    namespaceName: serviceBusNamespaceName
    skuName: serviceBusSkuName
    lanes: lanes
    maxDeliveryCount: queueMaxDeliveryCount
    lockDuration: queueLockDuration
    duplicateDetectionWindow: queueDuplicateDetectionWindow
    messageTimeToLive: queueMessageTimeToLive
    tags: tags
  }
}

module apps 'functionapp.bicep' = [for lane in lanes: {
  name: '${deployment().name}-app-${lane}'
  params: {
    location: location
    lane: lane
    appName: '${namePrefix}-${lane}-${uniqueString(resourceGroup().id, namePrefix)}'
    isPrimary: isPrimary
    tags: tags
    hostingPlan: hostingPlan
    dedicatedSkuName: dedicatedSkuName
    flexInstanceMemoryMB: flexInstanceMemoryMB
    flexMaximumInstanceCount: flexMaximumInstanceCount
    alwaysReadyInstances: lane == 'high' ? highLaneAlwaysReadyInstances : 0
    pythonVersion: pythonVersion
    storageAccountName: storage.outputs.accountName
    blobEndpoint: storage.outputs.blobEndpoint
    payloadContainerName: payloadContainerName
    serviceBusFullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
    cosmosEndpoint: cosmosEndpoint
    cosmosDatabaseName: cosmosDatabaseName
    appInsightsName: appInsightsName
    finishedJobTtlSeconds: finishedJobTtlSeconds
    laneDeadlines: laneDeadlines
    dispatcherPreferredRegion: dispatcherPreferredRegion
  }
}]

module access 'access.bicep' = [for (lane, i) in lanes: {
  name: '${deployment().name}-access-${lane}'
  params: {
    lane: lane
    principalId: apps[i].outputs.principalId
    storageAccountName: storage.outputs.accountName
    serviceBusNamespaceName: serviceBus.outputs.namespaceName
    cosmosAccountName: cosmosAccountName
    cosmosDatabaseName: cosmosDatabaseName
    appInsightsName: appInsightsName
  }
}]

@description('Names of this stamp\'s lane apps, in lane order.')
output appNames array = [for i in range(0, length(lanes)): apps[i].outputs.name]

@description('Host name of the app that serves the HTTP API.')
output apiHostName string = apps[indexOf(lanes, apiLane)].outputs.defaultHostName

@description('Resource ID of this stamp\'s Service Bus namespace.')
output serviceBusNamespaceId string = serviceBus.outputs.namespaceId
