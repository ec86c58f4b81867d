// One lane's Function App: the shared package, told its lane by DURALANE_LANE,
// signed in to every dependency with its own user-assigned identity. Settings
// use the identity-based forms (__accountName, __fullyQualifiedNamespace,
// __credential, __clientId); no key or connection string with a key appears.

@description('Required. Azure region of the app.')
param location string

@description('Required. The lane this app serves.')
@allowed([
  'high'
  'normal'
  'low'
])
param lane string

@description('Required. Globally unique app name (becomes <name>.azurewebsites.net).')
@minLength(2)
@maxLength(60)
param appName string

@description('Required. True in the primary stamp; tags the app for azd deploy.')
param isPrimary bool

@description('Optional. Tags added to every resource. Default: none.')
param tags object = {}

@description('Optional. FlexConsumption or Dedicated. Default: FlexConsumption.')
@allowed([
  'FlexConsumption'
  'Dedicated'
])
param hostingPlan string = 'FlexConsumption'

@description('Optional. App Service plan SKU when hostingPlan is Dedicated. Default: P0v3.')
@allowed([
  'B1'
  'P0v3'
  'P1v3'
])
param dedicatedSkuName string = 'P0v3'

@description('Optional. Memory per Flex Consumption instance, in MB. Default: 2048.')
@allowed([
  512
  2048
  4096
])
param flexInstanceMemoryMB int = 2048

@description('Optional. Most instances on Flex Consumption. Default: 100.')
@minValue(1)
@maxValue(1000)
param flexMaximumInstanceCount int = 100

@description('Optional. Always-ready instances of the Durable Functions group on Flex Consumption. Default: 0.')
@minValue(0)
param alwaysReadyInstances int = 0

@description('Optional. Python version of the Functions worker. Default: 3.11.')
@allowed([
  '3.11'
])
param pythonVersion string = '3.11'

@description('Required. Stamp storage account name (task hubs and deployment packages).')
param storageAccountName string

@description('Required. Blob endpoint of the stamp storage account, ending in a slash.')
param blobEndpoint string

@description('Required. Blob container for claim-check payloads.')
param payloadContainerName string

@description('Required. Service Bus host name, <namespace>.servicebus.windows.net.')
param serviceBusFullyQualifiedNamespace string

@description('Required. Cosmos DB account endpoint.')
param cosmosEndpoint string

@description('Required. Cosmos DB database name.')
param cosmosDatabaseName string

@description('Required. Application Insights component name (same resource group).')
param appInsightsName string

@description('Required. How long finished jobs are kept, in seconds.')
param finishedJobTtlSeconds int

@description('Required. Start deadline per lane, in seconds, as an object keyed by lane.')
param laneDeadlines object

@description('Optional. Region whose schedule dispatcher takes the dispatcher lease back when healthy; empty in a single region. Default: empty.')
param dispatcherPreferredRegion string = ''

var isFlex = hostingPlan == 'FlexConsumption'

// Per-lane host.json overrides; see bicep/hostjson/README.md. loadJsonContent
// needs a constant path, so all three are loaded and this lane's is picked.
var hostJsonByLane = {
  high: loadJsonContent('../hostjson/host.high.json')
  normal: loadJsonContent('../hostjson/host.normal.json')
  low: loadJsonContent('../hostjson/host.low.json')
}
var durableKnobs = hostJsonByLane[lane].extensions.durableTask
var serviceBusKnobs = hostJsonByLane[lane].extensions.serviceBus

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-${appName}'
  location: location
  tags: tags
}

var identitySettings = {
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  ServiceBusConnection__fullyQualifiedNamespace: serviceBusFullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identity.properties.clientId
  // DefaultAzureCredential in the Cosmos DB and Blob clients picks this identity.
  AZURE_CLIENT_ID: identity.properties.clientId
  // The connection string names the component; ingestion authenticates with
  // the identity below because the component has local auth off.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identity.properties.clientId}'
}

var duralaneSettings = {
  DURALANE_LANE: lane
  DURALANE_COSMOS_ENDPOINT: cosmosEndpoint
  DURALANE_COSMOS_DATABASE: cosmosDatabaseName
  DURALANE_BLOB_ENDPOINT: blobEndpoint
  DURALANE_BLOB_CONTAINER: payloadContainerName
  DURALANE_FINISHED_JOB_TTL_SECONDS: string(finishedJobTtlSeconds)
  DURALANE_DEADLINE_HIGH: string(laneDeadlines.high)
  DURALANE_DEADLINE_NORMAL: string(laneDeadlines.normal)
  DURALANE_DEADLINE_LOW: string(laneDeadlines.low)
  DURALANE_DISPATCHER_PREFERRED_REGION: dispatcherPreferredRegion
}

// Each lane is its own task hub (the names triggers/submission.py binds its
// durable clients to), and only the lane's own queue trigger listens.
var laneSettings = {
  AzureFunctionsJobHost__extensions__durableTask__hubName: durableKnobs.hubName
  'AzureWebJobs.jobs_high.Disabled': string(lane != 'high')
  'AzureWebJobs.jobs_normal.Disabled': string(lane != 'normal')
  'AzureWebJobs.jobs_low.Disabled': string(lane != 'low')
  'AzureWebJobs.jobs_high_dead_letters.Disabled': string(lane != 'high')
  'AzureWebJobs.jobs_normal_dead_letters.Disabled': string(lane != 'normal')
  'AzureWebJobs.jobs_low_dead_letters.Disabled': string(lane != 'low')
}

var hostSettings = {
  AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions: string(durableKnobs.maxConcurrentActivityFunctions)
  AzureFunctionsJobHost__extensions__durableTask__maxConcurrentOrchestratorFunctions: string(durableKnobs.maxConcurrentOrchestratorFunctions)
  AzureFunctionsJobHost__extensions__durableTask__storageProvider__maxQueuePollingInterval: durableKnobs.storageProvider.maxQueuePollingInterval
  AzureFunctionsJobHost__extensions__serviceBus__maxConcurrentCalls: string(serviceBusKnobs.maxConcurrentCalls)
}

// Flex Consumption takes runtime and version from functionAppConfig and
// rejects these two settings; a Dedicated plan needs them.
var dedicatedSettings = isFlex
  ? {}
  : {
      FUNCTIONS_EXTENSION_VERSION: '~4'
      FUNCTIONS_WORKER_RUNTIME: 'python'
    }

var appSettings = union(identitySettings, duralaneSettings, laneSettings, hostSettings, dedicatedSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${appName}'
  location: location
  tags: tags
  kind: isFlex ? 'functionapp' : 'linux'
  sku: isFlex
    ? {
        name: 'FC1'
        tier: 'FlexConsumption'
      }
    : {
        name: dedicatedSkuName
      }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'duralane-lane': lane }, isPrimary ? { 'azd-service-name': 'lane-${lane}' } : {})
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      alwaysOn: isFlex ? null : true
      linuxFxVersion: isFlex ? null : 'Python|${pythonVersion}'
      healthCheckPath: isFlex ? null : '/api/health'
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: isFlex
      ? {
          deployment: {
            storage: {
              type: 'blobContainer'
              value: '${blobEndpoint}deploy-${lane}'
              authentication: {
                type: 'UserAssignedIdentity'
                userAssignedIdentityResourceId: identity.id
              }
            }
          }
          scaleAndConcurrency: {
            maximumInstanceCount: flexMaximumInstanceCount
            instanceMemoryMB: flexInstanceMemoryMB
            alwaysReady: alwaysReadyInstances > 0
              ? [
                  {
                    name: 'durable'
                    instanceCount: alwaysReadyInstances
                  }
                ]
              : []
          }
          runtime: {
            name: 'python'
            version: pythonVersion
          }
        }
      : null
  }
}

// Publishing with a user name and password (FTP, SCM basic auth) is off;
// deployments sign in with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

@description('App name.')
output name string = site.name

@description('Default host name, <app>.azurewebsites.net.')
output defaultHostName string = site.properties.defaultHostName

@description('Object ID of the app\'s identity, for role assignments.')
output principalId string = identity.properties.principalId
