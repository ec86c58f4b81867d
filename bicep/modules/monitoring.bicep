// Log Analytics and workspace-based Application Insights, with local
// (instrumentation-key) auth off so only identities can ingest, plus the
// workbook that charts the queries under queries/.

@description('Required. Azure region of the workspace and component.')
param location string

@description('Required. Prefix of the resource names, e.g. dl-dev.')
param namePrefix string

@description('Optional. Log retention, in days. Default: 30.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Optional. Tags added to every resource. Default: none.')
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${namePrefix}'
  location: location
  tags: tags
  properties: {
    retentionInDays: retentionInDays
    sku: {
      name: 'PerGB2018'
    }
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${namePrefix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
    RetentionInDays: retentionInDays
  }
}

// Workbook names must be GUIDs; this one is stable per component.
resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(appInsights.id, 'duralane-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Duralane (${namePrefix})'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('../../queries/duralane.workbook.json')
  }
}

@description('Application Insights component name.')
output appInsightsName string = appInsights.name

@description('Application Insights component resource ID, the scope of the log alerts.')
output appInsightsId string = appInsights.id
