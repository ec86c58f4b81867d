// The stamp's storage account: Durable Functions task hubs (AzureWebJobsStorage),
// claim-check payloads, and one deployment container per lane app. Shared keys
// are off, so every client, the Functions host included, signs in with identity.

@description('Required. Azure region of the account.')
param location string

@description('Required. Storage account name, 3 to 24 lowercase letters and digits.')
@minLength(3)
@maxLength(24)
param accountName string

@description('Optional. Redundancy SKU. Default: Standard_LRS.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
])
param skuName string = 'Standard_LRS'

@description('Required. Blob container for claim-check payloads.')
param payloadContainerName string

@description('Required. The lanes; each lane app gets a deployment container deploy-<lane>.')
param lanes array

@description('Optional. Tags added to the account. Default: none.')
param tags object = {}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: accountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource payloadContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: payloadContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deploymentContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for lane in lanes: {
  parent: blobService
  name: 'deploy-${lane}'
  properties: {
    publicAccess: 'None'
  }
}]

@description('Storage account name.')
output accountName string = account.name

@description('Blob service endpoint, https://<account>.blob.core.windows.net/.')
output blobEndpoint string = account.properties.primaryEndpoints.blob
