// A Chaos Studio experiment that stops the primary region's lane apps for a
// while, to drill failover: Front Door should move the API to the secondary
// region and the secondary's dispatcher should take the schedule lease.
// Start it by hand (portal or `az rest`); creating it starts nothing.

@description('Required. Azure region of the experiment resource (a Chaos Studio region).')
param location string

@description('Required. Experiment name.')
param experimentName string

@description('Required. Names of the primary region\'s lane apps (same resource group).')
@minLength(1)
param siteNames array

@description('Optional. How long the apps stay stopped, ISO 8601. Default: PT10M.')
param stopDuration string = 'PT10M'

@description('Optional. Tags added to the experiment. Default: none.')
param tags object = {}

// Website Contributor: the only built-in role with sites/stop and sites/start.
// A control-plane role, given to the experiment alone, scoped to each app.
var websiteContributorId = 'de139f84-1756-47ae-9be6-808fbbe84772'

resource sites 'Microsoft.Web/sites@2024-04-01' existing = [for siteName in siteNames: {
  name: siteName
}]

resource targets 'Microsoft.Chaos/targets@2024-01-01' = [for (siteName, i) in siteNames: {
  name: 'Microsoft-AppService'
  scope: sites[i]
  properties: {}
}]

resource stopCapabilities 'Microsoft.Chaos/targets/capabilities@2024-01-01' = [for (siteName, i) in siteNames: {
  parent: targets[i]
  name: 'Stop-1.0'
}]

resource experiment 'Microsoft.Chaos/experiments@2024-01-01' = {
  name: experimentName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    selectors: [
      {
        id: 'primaryApps'
        type: 'List'
        targets: [for (siteName, i) in siteNames: {
          id: targets[i].id
          type: 'ChaosTarget'
        }]
      }
    ]
    steps: [
      {
        name: 'Stop the primary region'
        branches: [
          {
            name: 'All lane apps'
            actions: [
              {
                name: 'urn:csci:microsoft:appService:stop/1.0'
                type: 'continuous'
                duration: stopDuration
                selectorId: 'primaryApps'
                parameters: []
              }
            ]
          }
        ]
      }
    ]
  }
  dependsOn: [
    stopCapabilities
  ]
}

resource stopRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (siteName, i) in siteNames: {
  name: guid(sites[i].id, experiment.id, websiteContributorId)
  scope: sites[i]
  properties: {
    principalId: experiment.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', websiteContributorId)
  }
}]
