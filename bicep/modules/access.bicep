// What one lane app's identity may do, and nothing more: data-plane roles only,
// each at the narrowest scope that works. Names are guid(scope, principal, role)
// so a redeploy finds the same assignment instead of failing on a duplicate.

@description('Required. The lane; the identity receives from jobs-<lane> only.')
@allowed([
  'high'
  'normal'
  'low'
])
param lane string

@description('Required. Object ID of the lane app\'s user-assigned identity.')
param principalId string

@description('Required. Stamp storage account name (same resource group).')
param storageAccountName string

@description('Required. Stamp Service Bus namespace name (same resource group).')
param serviceBusNamespaceName string

@description('Required. Cosmos DB account name (same resource group).')
param cosmosAccountName string

@description('Required. Cosmos DB database the identity may read and write.')
param cosmosDatabaseName string

@description('Required. Application Insights component name (same resource group).')
param appInsightsName string

// Built-in role definition IDs, the same in every tenant.
var roleIds = {
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// Cosmos DB's own data-plane RBAC: Built-in Data Contributor.
var cosmosDataContributorId = '00000000-0000-0000-0000-000000000002'

// Durable Functions keeps task hubs in blobs, queues and tables; the app also
// writes claim-check payloads and reads its deployment package from blobs.
var storageRoleIds = [
  roleIds.storageBlobDataContributor
  roleIds.storageQueueDataContributor
  roleIds.storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' existing = {
  name: serviceBusNamespaceName
}

resource laneQueue 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = {
  parent: namespace
  name: 'jobs-${lane}'
}

resource cosmosAccount 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = {
  name: cosmosAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoleIds: {
  name: guid(storage.id, principalId, roleId)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

// Receive only from this lane's queue.
resource receiveRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(laneQueue.id, principalId, roleIds.serviceBusDataReceiver)
  scope: laneQueue
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataReceiver)
  }
}

// Send to every lane's queue: the API submits into any lane.
resource sendRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(namespace.id, principalId, roleIds.serviceBusDataSender)
  scope: namespace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataSender)
  }
}

// Identity-based telemetry ingestion (the component has local auth off).
resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
  }
}

resource cosmosRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmosAccount
  name: guid(cosmosAccount.id, principalId, cosmosDataContributorId)
  properties: {
    principalId: principalId
    roleDefinitionId: '${cosmosAccount.id}/sqlRoleDefinitions/${cosmosDataContributorId}'
    scope: '${cosmosAccount.id}/dbs/${cosmosDatabaseName}'
  }
}
