// The Cosmos DB account, database and containers: local (key) auth off, TLS 1.2,
// serverless in one region, autoscale and automatic failover across two. The
// leases container holds the scheduler's single-dispatcher lease, so exactly one
// region fires schedules and the other takes over when the lease lapses.

@description('Required. Account name, 3 to 44 lowercase letters, digits and hyphens.')
@minLength(3)
@maxLength(44)
param accountName string

@description('Required. Regions, write region first. One region makes a serverless account; two make a provisioned account with automatic failover.')
@minLength(1)
@maxLength(2)
param locations array

@description('Optional. Database name. Default: duralane.')
param databaseName string = 'duralane'

@description('Optional. Autoscale ceiling of the shared database throughput, in RU/s; multi-region only. Default: 1000.')
@minValue(1000)
param autoscaleMaxThroughput int = 1000

@description('Optional. Tags added to the account. Default: none.')
param tags object = {}

// Serverless accounts are single-region only.
var isServerless = length(locations) == 1

// Each container's definition (id, partition key, default TTL, indexing policy)
// is owned by the store, next to the code that queries it. defaultTtl -1 turns
// TTL on without a default: items expire only when they carry a ttl, which the
// store sets on finished jobs and lapsed leases.
var containers = {
  jobs: loadJsonContent('../../duralane/store/cosmos/jobs.json')
  deadletters: loadJsonContent('../../duralane/store/cosmos/deadletters.json')
  schedules: loadJsonContent('../../duralane/store/cosmos/schedules.json')
  runs: loadJsonContent('../../duralane/store/cosmos/runs.json')
  probes: loadJsonContent('../../duralane/store/cosmos/probes.json')
  leases: loadJsonContent('../../duralane/store/cosmos/leases.json')
}

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: accountName
  location: locations[0]
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    enableAutomaticFailover: !isServerless
    enableMultipleWriteLocations: false
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    locations: [for (region, i) in locations: {
      locationName: region
      failoverPriority: i
      isZoneRedundant: false
    }]
    capabilities: isServerless
      ? [
          {
            name: 'EnableServerless'
          }
        ]
      : []
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: isServerless
      ? {}
      : {
          autoscaleSettings: {
            maxThroughput: autoscaleMaxThroughput
          }
        }
  }
}

resource containerResources 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [for container in items(containers): {
  parent: database
  name: container.value.id
  properties: {
    resource: container.value
  }
}]

@description('Account name.')
output accountName string = account.name

@description('Account endpoint, https://<account>.documents.azure.com:443/.')
output endpoint string = account.properties.documentEndpoint

@description('Database name.')
output databaseName string = database.name
