"""What the demo A4C keeps in Elasticsearch: one index per model class, and their mappings.

A4C 3.x names its indices after its model classes, lowercased (application, csar, nodetype,
deploymenttopology ...). The mappings here are explicit, mostly ``dynamic: strict``, with the
nested and object fields a restore must bring back intact.
"""

from __future__ import annotations

from datetime import UTC, datetime

BASE_TIME = datetime(2023, 3, 1, 8, 0, tzinfo=UTC)
WORKSPACE = "ALIEN_GLOBAL_WORKSPACE"
NORMATIVE = ("tosca-normative-types", "1.0.0-ALIEN20")


# --- mappings ------------------------------------------------------------------------------
_TYPES = {
    "k": {"type": "keyword"},
    "t": {"type": "text"},
    "tk": {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 256}}},
    "d": {"type": "date"},
    "l": {"type": "long"},
    "i": {"type": "integer"},
    "b": {"type": "boolean"},
    "x": {"type": "object", "enabled": False},  # free-form maps A4C stores but never searches
    "n": {"type": "keyword", "index": False},
}


def _props(spec: dict) -> dict:
    return {k: _TYPES[v] if isinstance(v, str) else v for k, v in spec.items()}


def _nested(**spec) -> dict:
    return {"type": "nested", "properties": _props(spec)}


def _object(**spec) -> dict:
    return {"type": "object", "properties": _props(spec)}


# Marks the indices as made up, so that nobody takes them for a real installation's.
GENERATOR = "a4c-backup demo_data"
_META = {"generator": GENERATOR}


def _strict(**spec) -> dict:
    return {"dynamic": "strict", "_meta": _META, "properties": _props(spec)}


def _loose(**spec) -> dict:
    return {"dynamic": "false", "_meta": _META, "properties": _props(spec)}


_VERSION = _object(major="i", minor="i", incremental="i", qualifier="k")
_TAGS = _nested(name="k", value="t")
_TOSCA_TYPE = dict(
    id="k", elementId="k", archiveName="k", archiveVersion="k", workspace="k", derivedFrom="k",
    description="t", abstract="b", creationDate="d", lastUpdateDate="d", tags=_TAGS,
)  # fmt: skip
_NODE_TEMPLATES = _nested(
    name="k", type="k", properties="x",
    relationships=_nested(name="k", type="k", target="k", requirementName="k"),
)  # fmt: skip

MAPPINGS: dict[str, dict] = {
    "application": _strict(
        id="k", name="tk", description="t", imageId="k", tags=_TAGS, metaProperties="x",
        userRoles="x", groupRoles="x", creationDate="d", lastUpdateDate="d",
    ),
    "applicationversion": _strict(
        id="k", applicationId="k", version="k", nestedVersion=_VERSION, released="b",
        description="t", topologyVersions=_nested(version="k", archiveId="k", qualifier="k"),
    ),
    "applicationenvironment": _strict(
        id="k", name="tk", applicationId="k", environmentType="k", version="k",
        topologyVersion="k", description="t", userRoles="x", groupRoles="x",
    ),
    "csar": _strict(
        id="k", name="k", version="k", nestedVersion=_VERSION, workspace="k", hash="k",
        definitionHash="k", importSource="k", importDate="d", toscaDefinitionsVersion="k",
        description="t", templateAuthor="k", yamlFilePath="n", size="l",
        dependencies=_nested(name="k", version="k", hash="k"),
    ),
    "topology": _strict(
        id="k", archiveName="k", archiveVersion="k", workspace="k", description="t",
        creationDate="d", lastUpdateDate="d", dependencies=_nested(name="k", version="k", hash="k"),
        nodeTemplates=_NODE_TEMPLATES, inputs="x", workflows="x",
    ),
    "nodetype": _strict(
        **_TOSCA_TYPE, properties="x", attributes="x", interfaces="x", alienScore="l",
        capabilities=_nested(id="k", type="k", upperBound="i"),
        requirements=_nested(id="k", type="k", lowerBound="i", upperBound="i"),
        defaultCapabilities="k", substitutionTopologyId="k", icon="k",
    ),
    "capabilitytype": _strict(**_TOSCA_TYPE, properties="x", validSources="k"),
    "relationshiptype": _strict(**_TOSCA_TYPE, properties="x", validSources="k", validTargets="k"),
    "datatype": _strict(**_TOSCA_TYPE, properties="x", deriveFromSimpleType="b"),
    "artifacttype": _strict(**_TOSCA_TYPE, mimeType="k", fileExt="k"),
    "policytype": _strict(**_TOSCA_TYPE, properties="x", targets="k"),
    "deployment": _strict(
        id="k", environmentId="k", sourceId="k", sourceName="tk", sourceType="k",
        versionId="k", orchestratorId="k", locationIds="k", deploymentUsername="k",
        orchestratorDeploymentId="k", startDate="d", endDate="d", workflowExecutions="x",
    ),
    "deploymenttopology": _strict(
        id="k", environmentId="k", versionId="k", initialTopologyId="k", orchestratorId="k",
        archiveName="k", archiveVersion="k", lastDeploymentTopologyUpdateDate="d",
        locationGroups="x", nodeTemplates=_NODE_TEMPLATES,
    ),
    "location": _strict(
        id="k", name="tk", orchestratorId="k", infrastructureType="k", environmentType="k",
        creationDate="d", lastUpdateDate="d", metaProperties="x",
        dependencies=_nested(name="k", version="k"),
    ),
    "locationresourcetemplate": _strict(
        id="k", name="tk", locationId="k", enabled="b", service="b", generated="b", types="k",
        template=_object(type="k", properties="x"), portabilityDefinitions="x",
    ),
    "orchestrator": _strict(
        id="k", name="tk", pluginId="k", pluginBean="k", state="k",
        deploymentNamePattern="k", authorizedUsers="k",
    ),
    "orchestratorconfiguration": _strict(id="k", configuration="x"),
    "user": _strict(
        username="k", firstName="tk", lastName="tk", email="k", password="n", roles="k",
        groups="k", internalDirectory="b", enabled="b", lastLoginDate="d",
    ),
    "group": _strict(id="k", name="tk", email="k", description="t", users="k", roles="k"),
    "audittrace": _loose(
        id="k", timestamp="d", userName="k", userFirstName="t", userLastName="t",
        userEmail="k", category="k", action="k", method="k", path="k", requestBody="n",
        requestParameters="x", responseStatus="i", clientIp="k", alien4CloudUI="b",
    ),
    "auditconfiguration": _strict(id="k", enabled="b", methodsConfiguration="x"),
    "plugin": _strict(
        id="k", enabled="b", configurable="b", pluginPathId="k", uploadTime="d",
        descriptor=_object(
            id="k", name="tk", version="k", description="t", configurationClass="k",
            componentDescriptors=_nested(beanName="k", name="k", description="t", type="k"),
        ),
    ),
    "pluginconfiguration": _strict(id="k", pluginId="k", configuration="x"),
    "repository": _strict(
        id="k", name="tk", repositoryType="k", repositoryUrl="k", pluginId="k", configuration="x"
    ),
    "suggestionentry": _strict(
        id="k", esIndex="k", esType="k", targetElementId="k", targetProperty="k", suggestions="k"
    ),
    "serviceresource": _strict(
        id="k", name="tk", version="k", nestedVersion=_VERSION, description="t",
        environmentId="k", state="k", locationIds="k", creationDate="d", lastUpdateDate="d",
        nodeInstance=_object(nodeTemplate="x", attributeValues="x"),
        capabilitiesRelationshipTypes="x",
    ),
    "metapropconfiguration": _strict(
        id="k", name="k", description="t", target="k", required="b", password="b", type="k",
        default="k", constraints="x", filtered="b",
    ),
    "paasdeploymentlog": _loose(
        id="k", deploymentId="k", deploymentPaaSId="k", level="k", timestamp="d",
        workflowId="k", executionId="k", nodeId="k", instanceId="k", interfaceName="k",
        operationName="k", type="k", content="t",
    ),
    "csargitrepository": _strict(
        id="k", repositoryUrl="k", username="k", storedLocally="b",
        importLocations=_nested(branchId="k", subPath="k", lastImportedHash="k"),
    ),
    "gitrepository": _strict(
        id="k", gitType="k", url="k", local="b", localPath="k", branch="k", applicationId="k"
    ),
}  # fmt: skip


def aliases(prefix: str) -> dict[str, dict]:
    """The aliases the demo puts on its indices (A4C has none; a backup must still carry them)."""
    return {
        f"{prefix}audittrace": {f"{prefix}audit": {}},
        f"{prefix}deployment": {
            f"{prefix}active-deployments": {
                "filter": {"bool": {"must_not": {"exists": {"field": "endDate"}}}}
            }
        },
    }
