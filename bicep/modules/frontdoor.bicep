// Front Door in front of the HTTP API: one origin per region, the primary at
// priority 1, the secondary at 2, so traffic moves only when the primary fails
// its health probe of GET /api/health.

@description('Required. Prefix of the profile and endpoint names, globally unique.')
param namePrefix string

@description('Required. Host names of the API apps, primary first.')
@minLength(1)
param originHostNames array

@description('Optional. Seconds between health probes from each Front Door edge. Default: 30.')
@minValue(5)
@maxValue(255)
param probeIntervalSeconds int = 30

@description('Optional. Tags added to every resource. Default: none.')
param tags object = {}

resource profile 'Microsoft.Cdn/profiles@2024-02-01' = {
  name: 'afd-${namePrefix}'
  location: 'global'
  tags: tags
  sku: {
    name: 'Standard_AzureFrontDoor'
  }
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2024-02-01' = {
  parent: profile
  name: 'api-${namePrefix}'
  location: 'global'
  tags: tags
  properties: {
    enabledState: 'Enabled'
  }
}

resource originGroup 'Microsoft.Cdn/profiles/originGroups@2024-02-01' = {
  parent: profile
  name: 'api'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 0
    }
    healthProbeSettings: {
      probePath: '/api/health'
      probeRequestType: 'GET'
      probeProtocol: 'Https'
      probeIntervalInSeconds: probeIntervalSeconds
    }
    sessionAffinityState: 'Disabled'
  }
}

resource origins 'Microsoft.Cdn/profiles/originGroups/origins@2024-02-01' = [for (hostName, i) in originHostNames: {
  parent: originGroup
  name: 'region-${i}'
  properties: {
    hostName: hostName
    originHostHeader: hostName
    httpPort: 80
    httpsPort: 443
    priority: i + 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}]

resource route 'Microsoft.Cdn/profiles/afdEndpoints/routes@2024-02-01' = {
  parent: endpoint
  name: 'api'
  properties: {
    originGroup: {
      id: originGroup.id
    }
    supportedProtocols: [
      'Https'
    ]
    patternsToMatch: [
      '/*'
    ]
    forwardingProtocol: 'HttpsOnly'
    httpsRedirect: 'Enabled'
    linkToDefaultDomain: 'Enabled'
    enabledState: 'Enabled'
  }
  // A route needs at least one origin in its group when it is created.
  dependsOn: [
    origins
  ]
}

@description('Front Door endpoint host name, <name>.z01.azurefd.net.')
output endpointHostName string = endpoint.properties.hostName
