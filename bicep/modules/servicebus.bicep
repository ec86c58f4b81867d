// The stamp's Service Bus namespace and one queue per lane. Local (SAS) auth is
// off; every queue states its delivery, lock, duplicate-detection and
// dead-letter behaviour rather than inheriting a default.

@description('Required. Azure region of the namespace.')
param location string

@description('Required. Namespace name, 6 to 50 letters, digits and hyphens.')
@minLength(6)
@maxLength(50)
param namespaceName string

@description('Optional. Tier. Standard is the cheapest tier with duplicate detection. Default: Standard.')
@allowed([
  'Standard'
  'Premium'
])
param skuName string = 'Standard'

@description('Required. The lanes; one queue jobs-<lane> each.')
param lanes array

@description('Optional. Deliveries of one message before it moves to the dead-letter subqueue. Default: 10.')
@minValue(1)
@maxValue(100)
param maxDeliveryCount int = 10

@description('Optional. Peek-lock duration, ISO 8601, at most PT5M. Default: PT1M.')
param lockDuration string = 'PT1M'

@description('Optional. Duplicate-detection window, ISO 8601. Default: PT10M.')
param duplicateDetectionWindow string = 'PT10M'

@description('Optional. Message time to live, ISO 8601; expired messages are dead-lettered. Default: P14D.')
param messageTimeToLive string = 'P14D'

@description('Optional. Tags added to the namespace. Default: none.')
param tags object = {}

resource namespace 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuName
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [for lane in lanes: {
  parent: namespace
  name: 'jobs-${lane}'
  properties: {
    maxDeliveryCount: maxDeliveryCount
    lockDuration: lockDuration
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    defaultMessageTimeToLive: messageTimeToLive
    deadLetteringOnMessageExpiration: true
    requiresSession: false
    enablePartitioning: false
    enableBatchedOperations: true
  }
}]

@description('Namespace name.')
output namespaceName string = namespace.name

@description('Namespace resource ID, for alerts.')
output namespaceId string = namespace.id

@description('Host name clients connect to, <namespace>.servicebus.windows.net.')
output fullyQualifiedNamespace string = replace(replace(namespace.properties.serviceBusEndpoint, 'https://', ''), ':443/', '')
