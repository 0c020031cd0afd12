"""What the demo A4C's indices hold: the people and things of one made-up installation.

``Installation`` draws them from a seeded random generator; ``documents`` turns them into
documents that refer to one another as A4C's do; backups/demo/generator.py writes them out.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from backups.demo.mappings import BASE_TIME, NORMATIVE, WORKSPACE

# --- the installation: who and what exists --------------------------------------------------
COMPONENTS = (
    "mysql apache tomcat php wordpress nodejs mongodb elasticsearch kafka zookeeper redis "
    "postgresql nginx haproxy jdk docker kubernetes consul rabbitmq cassandra spark hadoop "
    "grafana prometheus keycloak vault ansible jenkins gitlab minio"
).split()
FLAVORS = "pub linux_sh ansible docker k8s windows puppet chef".split()
VERSIONS = ("1.0.0", "1.1.0", "2.0.0", "2.1.0-SNAPSHOT", "3.0.0")
SUFFIXES = ("", "Server", "Database", "Agent", "Cluster", "Proxy", "Client", "Config", "Monitor")
FIRST = (
    "alice bruno chloe david emma farid gaelle hugo ines jules karim lea marc nora olivier".split()
)
LAST = "martin bernard dubois thomas robert richard petit durand leroy moreau simon laurent".split()
APP_WORDS = "shop billing crm portal analytics search booking payroll inventory mail wiki".split()
ENV_TYPES = ("DEVELOPMENT", "INTEGRATION_TESTS", "PRE_PRODUCTION", "PRODUCTION")
PLUGINS = ("kubernetes", "openstack", "yorc", "ldap", "consul-discovery", "premium-dist")
WORDS = (
    "node template relationship capability requirement artifact interface operation create "
    "configure start stop delete deployment workflow compute network volume host install "
    "property attribute input output policy location orchestrator topology archive version"
).split()


def _version(text: str) -> dict:
    numbers, _, qualifier = text.partition("-")
    parts = [int(p) for p in numbers.split(".")] + [0, 0]
    return {
        "major": parts[0],
        "minor": parts[1],
        "incremental": parts[2],
        "qualifier": qualifier or None,
    }


def _camel(word: str) -> str:
    return "".join(p.capitalize() for p in word.replace("-", "_").split("_"))


class Installation:
    """The entities of one made-up A4C, drawn from ``rng``; the documents and files follow."""

    def __init__(self, rng: random.Random, csars: int):
        self.rng = rng
        self.size = n = csars  # type libraries; each application version adds a topology csar
        self.t0 = BASE_TIME
        names = [f"org.alien4cloud.{c}.{f}" for c in COMPONENTS for f in FLAVORS]
        rng.shuffle(names)
        self.csars: list[dict] = [self._csar(*NORMATIVE, "types", [])]
        for name in names:
            for version in VERSIONS[: rng.choice((1, 1, 1, 2, 3))]:
                if len(self.csars) < n:
                    self.csars.append(self._csar(name, version, "types", [NORMATIVE]))
        self.types = [t for c in self.csars for t in c["types"]]
        self.users = ["admin"] + rng.sample(
            [f"{f}.{s}" for f in FIRST for s in LAST], min(150, 9 + n // 2)
        )
        self.groups = ["ALL_USERS"] + [
            f"team-{w}" for w in rng.sample(APP_WORDS, min(10, 2 + n // 10))
        ]
        self.plugins = [
            (f"alien4cloud-plugin-{p}", rng.choice(("3.0.0", "3.1.0", "3.2.1"))) for p in PLUGINS
        ]
        self.orchestrators = [
            (self.uid(), "yorc-openstack", "openstack"),
            (self.uid(), "yorc-k8s", "kubernetes"),
        ]
        self.locations = [
            (self.uid(), name, self.orchestrators[i % 2])
            for i, name in enumerate(("paris-openstack", "k8s-prod", "lyon-openstack", "k8s-dev"))
        ]
        self.apps: list[dict] = []
        app_names = [
            f"{w}-{s}" for w in APP_WORDS for s in ("app", "service", "api", "batch", "web")
        ]
        for app_name in rng.sample(app_names, min(len(app_names), max(3, n * 2 // 5))):
            self.apps.append(self._application(app_name))
        self.deployments = [d for a in self.apps for e in a["envs"] for d in e["deployments"]]
        self.git_repos = [a["id"] for a in self.apps[: min(20, max(2, len(self.apps) // 3))]]

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def date(self, after: datetime | None = None, days: float = 600) -> datetime:
        return (after or self.t0) + timedelta(seconds=self.rng.randrange(int(days * 86400)))

    def _csar(
        self, name: str, version: str, kind: str, deps: list, nodes: list | None = None
    ) -> dict:
        rng = self.rng
        csar = {"name": name, "version": version, "kind": kind, "deps": deps, "date": self.date()}
        if kind == "types":
            normative = name == NORMATIVE[0]
            prefix, base = ("tosca", "Root") if normative else (name, _camel(name.split(".")[2]))

            def some(most: int) -> int:  # the normative types have one of every kind
                return max(rng.randint(0, most), 1 if normative else 0)

            picks = rng.sample(SUFFIXES, rng.randint(3, 8))
            csar["types"] = [(f"{prefix}.nodes.{base}{s}", name, version) for s in picks]
            csar["capabilities"] = [
                f"{prefix}.capabilities.{base}{s}" for s in picks[: some(3) or 1]
            ]
            csar["relationships"] = [
                f"{prefix}.relationships.{base}{s}Uses" for s in picks[: some(2)]
            ]
            csar["datatypes"] = [f"{prefix}.datatypes.{base}{s}Options" for s in picks[: some(2)]]
            csar["artifacts"] = [f"{prefix}.artifacts.{base}Archive{s}" for s in picks[: some(1)]]
            csar["policies"] = [f"{prefix}.policies.{base}Scaling{s}" for s in picks[: some(1)]]
            csar["scripts"] = rng.sample(
                ("create", "configure", "start", "stop", "delete"), rng.randint(2, 4)
            )
        else:
            csar["nodes"] = nodes or []
        return csar

    def _application(self, name: str) -> dict:
        rng = self.rng
        app = {
            "id": name,
            "name": _camel(name),
            "image": self.uid(),
            "date": self.date(),
            "envs": [],
        }
        app["versions"] = list(VERSIONS[: rng.choice((1, 1, 2))])
        for version in app["versions"]:
            picked = rng.sample(self.types, min(len(self.types), rng.randint(2, 5)))
            deps = sorted({(t[1], t[2]) for t in picked} | {NORMATIVE})
            nodes = [(f"{t[0].rsplit('.', 1)[1]}_{i}", t[0]) for i, t in enumerate(picked)]
            self.csars.append(self._csar(name, version, "topology", deps, nodes))
        for env_type in rng.sample(ENV_TYPES, rng.randint(1, 3)):
            env = {"id": self.uid(), "name": env_type.lower().replace("_", "-"), "type": env_type}
            env["version"] = rng.choice(app["versions"])
            env["location"] = rng.choice(self.locations)
            start = self.date(app["date"], 30)
            env["deployments"] = []
            for i in range(rng.randint(0, 4)):
                start = self.date(start, 20)
                last = i == 3 or rng.random() < 0.3
                end = None if last else self.date(start, 5)
                dep = {"id": self.uid(), "start": start, "end": end, "env": env, "app": app}
                dep["paas_id"] = f"{name}-{env['name']}-{dep['id'][:8]}"
                env["deployments"].append(dep)
                if last:
                    break
            app["envs"].append(env)
        return app


# --- documents -----------------------------------------------------------------------------
def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def tosca_yaml(csar: dict) -> str:
    """The definitions file of a csar, as A4C would have parsed it."""
    lines = [
        "tosca_definitions_version: alien_dsl_3_0_0",
        "metadata:",
        f"  template_name: {csar['name']}",
        f"  template_version: {csar['version']}",
        "  template_author: a4c-backup demo",
        "imports:",
        *[f"  - {name}:{version}" for name, version in csar["deps"]],
    ]
    if csar["kind"] == "types":
        lines.append("node_types:")
        for element, _, _ in csar["types"]:
            lines += [f"  {element}:", "    derived_from: tosca.nodes.SoftwareComponent"]
            lines += ["    interfaces:", "      Standard:"]
            lines += [f"        {s}: scripts/{s}.sh" for s in csar["scripts"]]
    else:
        lines += ["topology_template:", "  node_templates:"]
        for node, node_type in csar["nodes"]:
            lines += [f"    {node}:", f"      type: {node_type}"]
    return "\n".join(lines) + "\n"


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


# An index's name (unprefixed) and its documents, as (id, source) pairs.
Indexed = tuple[str, Iterable[tuple[str, dict]]]


# Long literal documents read best one field group per line, so the formatter keeps out.
# fmt: off
def documents(inst: Installation) -> Iterator[Indexed]:
    """(index, documents) for every demo index (unprefixed), documents as (id, source) pairs.

    Documents are drawn from ``inst.rng`` in a fixed order: consume them in the order given.
    """
    yield from _archives(inst)
    yield from _types(inst)
    yield from _people(inst)
    yield from _platform(inst)
    yield from _applications(inst)
    yield from _configuration(inst)
    yield "audittrace", _audit(inst, 35 * inst.size)
    yield "paasdeploymentlog", _deployment_logs(inst, 8)


def _archives(inst: Installation) -> Iterator[Indexed]:
    """The CSARs and the topologies inside them."""
    rng = inst.rng
    hashes: dict[tuple[str, str], str] = {}
    csars, topologies = [], []
    for c in inst.csars:
        cid, text = f"{c['name']}:{c['version']}", tosca_yaml(c)
        hashes[(c["name"], c["version"])] = _hash(text)
        deps = [{"name": n, "version": v, "hash": hashes.get((n, v))} for n, v in c["deps"]]
        workspace = WORKSPACE if c["kind"] == "types" else f"app:{c['name']}"
        csars.append((cid, {
            "id": cid, "name": c["name"], "version": c["version"],
            "nestedVersion": _version(c["version"]), "workspace": workspace,
            "hash": _hash(text), "definitionHash": _hash(text[::-1]),
            "importSource": rng.choice(("UPLOAD", "GIT", "ALIEN")), "importDate": _iso(c["date"]),
            "toscaDefinitionsVersion": "alien_dsl_3_0_0", "description": f"{c['name']} archive",
            "templateAuthor": "a4c-backup demo", "yamlFilePath": f"{c['name']}.yml",
            "size": len(text), "dependencies": deps,
        }))
        if c["kind"] == "topology":
            nodes = [{
                "name": node, "type": node_type, "properties": {"component_version": c["version"]},
                "relationships": [{"name": f"hostedOn{node}", "target": "Compute",
                                   "type": "tosca.relationships.HostedOn",
                                   "requirementName": "host"}],
            } for node, node_type in c["nodes"]]
            topologies.append((cid, {
                "id": cid, "archiveName": c["name"], "archiveVersion": c["version"],
                "workspace": workspace, "description": f"Topology of {c['name']}",
                "creationDate": _iso(c["date"]), "lastUpdateDate": _iso(inst.date(c["date"], 30)),
                "dependencies": deps, "nodeTemplates": nodes,
                "inputs": {"os_distribution": {"type": "string"}},
                "workflows": {"install": {"steps": len(nodes)}},
            }))
    yield "csar", csars
    yield "topology", topologies


def _types(inst: Installation) -> Iterator[Indexed]:
    """The TOSCA types the type libraries declare: nodes, capabilities, relationships..."""
    rng = inst.rng

    def tosca_type(element: str, c: dict, **extra) -> tuple[str, dict]:
        date, version = inst.date(), c["version"]
        return f"{element}:{version}", {
            "id": f"{element}:{version}", "elementId": element, "archiveName": c["name"],
            "archiveVersion": version, "workspace": WORKSPACE, "derivedFrom": ["tosca.nodes.Root"],
            "description": f"{element.rsplit('.', 1)[-1]} from {c['name']}",
            "abstract": rng.random() < 0.1,
            "creationDate": _iso(date), "lastUpdateDate": _iso(date),
            "tags": [{"name": "icon", "value": "images/icon.png"}], **extra,
        }

    libraries = [c for c in inst.csars if c["kind"] == "types"]
    yield "nodetype", [tosca_type(
        element, c, properties={"port": {"type": "integer", "default": rng.randint(1024, 65535)}},
        attributes={"ip_address": {"type": "string"}}, interfaces={"Standard": c["scripts"]},
        alienScore=rng.randint(0, 5000), defaultCapabilities=[c["capabilities"][0]],
        capabilities=[{"id": "feature", "type": c["capabilities"][0], "upperBound": 100}],
        requirements=[{"id": "host", "type": "tosca.capabilities.Container",
                       "lowerBound": 1, "upperBound": 1}],
        substitutionTopologyId=None, icon="images/icon.png",
    ) for c in libraries for element, _, _ in c["types"]]
    roots = ["tosca.capabilities.Root"]
    for index, key, extra in (
        ("capabilitytype", "capabilities", {"properties": {}, "validSources": roots}),
        ("relationshiptype", "relationships",
         {"properties": {}, "validSources": roots, "validTargets": ["tosca.capabilities.Node"]}),
        ("datatype", "datatypes",
         {"properties": {"value": {"type": "string"}}, "deriveFromSimpleType": False}),
        ("artifacttype", "artifacts", {"mimeType": "application/zip", "fileExt": ["zip", "tgz"]}),
        ("policytype", "policies",
         {"properties": {"max": {"type": "integer"}}, "targets": ["tosca.nodes.Compute"]}),
    ):
        yield index, [tosca_type(e, c, **extra) for c in libraries for e in c[key]]


def _people(inst: Installation) -> Iterator[Indexed]:
    """Users and groups."""
    rng = inst.rng
    roles = ("APPLICATIONS_MANAGER", "COMPONENTS_MANAGER", "ARCHITECT", "COMPONENTS_BROWSER")
    yield "user", [(u, {
        "username": u, "email": f"{u}@example.com",
        "firstName": u.split(".")[0].capitalize(), "lastName": u.split(".")[-1].capitalize(),
        "password": "$2a$10$" + "".join(rng.choices("abcdefghijkLMNOPQ0123456789./", k=53)),
        "roles": ["ADMIN"] if u == "admin" else rng.sample(roles, 2),
        "groups": rng.sample(inst.groups, rng.randint(1, 2)),
        "internalDirectory": u == "admin" or rng.random() < 0.5,
        "enabled": rng.random() < 0.9, "lastLoginDate": _iso(inst.date()),
    }) for u in inst.users]
    yield "group", [(g, {
        "id": g, "name": g, "email": f"{g}@example.com", "description": f"The {g} group",
        "users": rng.sample(inst.users, 4), "roles": ["COMPONENTS_BROWSER"],
    }) for g in inst.groups]


def _platform(inst: Installation) -> Iterator[Indexed]:
    """Plugins, orchestrators and their locations."""
    plugin_ids = [f"{p}:{v}" for p, v in inst.plugins]
    yield "plugin", [(f"{p}:{v}", {
        "id": f"{p}:{v}", "enabled": True, "configurable": i % 2 == 0, "pluginPathId": f"{p}/{v}",
        "uploadTime": _iso(inst.date()), "descriptor": {
            "id": p, "name": _camel(p), "version": v, "description": f"The {p} plugin",
            "configurationClass": f"org.alien4cloud.{p.replace('-', '')}.Configuration",
            "componentDescriptors": [{"beanName": f"{p}-factory", "name": _camel(p),
                                      "description": "", "type": "IOrchestratorPluginFactory"}],
        },
    }) for i, (p, v) in enumerate(inst.plugins)]
    yield "pluginconfiguration", [
        (pid, {"id": pid, "pluginId": pid, "configuration": {"timeout": 30}}) for pid in plugin_ids
    ]
    yield "orchestrator", [(oid, {
        "id": oid, "name": name, "pluginId": plugin_ids[2], "pluginBean": "yorc-factory",
        "state": "CONNECTED", "deploymentNamePattern": "environment.name + application.name",
        "authorizedUsers": ["admin"],
    }) for oid, name, _ in inst.orchestrators]
    yield "orchestratorconfiguration", [(oid, {
        "id": oid, "configuration": {"urlYorc": f"http://yorc-{kind}:8800", "insecureTLS": False},
    }) for oid, _, kind in inst.orchestrators]
    yield "location", [(lid, {
        "id": lid, "name": name, "orchestratorId": orch[0], "infrastructureType": orch[2],
        "environmentType": "PRODUCTION" if "prod" in name else "DEVELOPMENT",
        "creationDate": _iso(inst.date()), "lastUpdateDate": _iso(inst.date()),
        "metaProperties": {},
        "dependencies": [{"name": NORMATIVE[0], "version": NORMATIVE[1]}],
    }) for lid, name, orch in inst.locations]
    yield "locationresourcetemplate", [(key := inst.uid(), {
        "id": key, "name": f"{name}-{flavor}", "locationId": lid, "enabled": True, "service": False,
        "generated": flavor == "default", "types": [f"org.alien4cloud.{orch[2]}.Compute"],
        "template": {"type": f"org.alien4cloud.{orch[2]}.Compute",
                     "properties": {"flavor": flavor}},
        "portabilityDefinitions": {},
    }) for lid, name, orch in inst.locations for flavor in ("small", "large", "gpu", "default")]


def _applications(inst: Installation) -> Iterator[Indexed]:
    """Applications, their versions, environments, deployments and services."""
    rng = inst.rng
    yield "application", [(a["id"], {
        "id": a["id"], "name": a["name"], "description": f"The {a['name']} application",
        "imageId": a["image"], "tags": [{"name": "owner", "value": rng.choice(inst.groups)}],
        "metaProperties": {}, "userRoles": {rng.choice(inst.users): ["APPLICATION_MANAGER"]},
        "groupRoles": {}, "creationDate": _iso(a["date"]),
        "lastUpdateDate": _iso(inst.date(a["date"], 60)),
    }) for a in inst.apps]
    yield "applicationversion", [(f"{a['id']}:{v}", {
        "id": f"{a['id']}:{v}", "applicationId": a["id"], "version": v,
        "nestedVersion": _version(v), "released": "SNAPSHOT" not in v, "description": "",
        "topologyVersions": [{"version": v, "archiveId": f"{a['id']}:{v}", "qualifier": None}],
    }) for a in inst.apps for v in a["versions"]]
    envs = [(a, e) for a in inst.apps for e in a["envs"]]
    yield "applicationenvironment", [(e["id"], {
        "id": e["id"], "name": e["name"], "applicationId": a["id"], "environmentType": e["type"],
        "version": e["version"], "topologyVersion": e["version"], "description": "",
        "userRoles": {}, "groupRoles": {"ALL_USERS": ["APPLICATION_USER"]},
    }) for a, e in envs]
    yield "deploymenttopology", [(f"{a['id']}:{e['version']}::{e['id']}", {
        "id": f"{a['id']}:{e['version']}::{e['id']}", "environmentId": e["id"],
        "versionId": f"{a['id']}:{e['version']}", "initialTopologyId": f"{a['id']}:{e['version']}",
        "orchestratorId": e["location"][2][0], "archiveName": a["id"],
        "archiveVersion": e["version"], "lastDeploymentTopologyUpdateDate": _iso(inst.date()),
        "locationGroups": {"_A4C_ALL": {"locationId": e["location"][0]}},
        "nodeTemplates": [{"name": "Compute", "properties": {}, "relationships": [],
                           "type": f"org.alien4cloud.{e['location'][2][2]}.Compute"}],
    }) for a, e in envs]
    yield "deployment", [(d["id"], {
        "id": d["id"], "environmentId": d["env"]["id"], "sourceId": d["app"]["id"],
        "sourceName": d["app"]["name"], "sourceType": "APPLICATION",
        "versionId": f"{d['app']['id']}:{d['env']['version']}",
        "orchestratorId": d["env"]["location"][2][0], "locationIds": [d["env"]["location"][0]],
        "deploymentUsername": d["paas_id"].rsplit("-", 1)[0],
        "orchestratorDeploymentId": d["paas_id"],
        "startDate": _iso(d["start"]), "endDate": _iso(d["end"]),
        "workflowExecutions": {"install": "DONE"},
    }) for d in inst.deployments]
    yield "serviceresource", [(key := inst.uid(), {
        "id": key, "name": f"{a['id']}-service", "version": e["version"],
        "nestedVersion": _version(e["version"]), "description": f"{a['name']} as a service",
        "environmentId": e["id"], "state": "started", "locationIds": [e["location"][0]],
        "creationDate": _iso(inst.date()), "lastUpdateDate": _iso(inst.date()),
        "nodeInstance": {"nodeTemplate": {"type": "tosca.nodes.Root"},
                         "attributeValues": {"state": "started"}},
        "capabilitiesRelationshipTypes": {},
    }) for a, e in [(a, e) for a, e in envs if e["type"] == "PRODUCTION"] or envs[:1]]


def _configuration(inst: Installation) -> Iterator[Indexed]:
    """Meta-properties, artifact and git repositories, suggestions, the audit's settings."""
    rng = inst.rng
    plugin_ids = [f"{p}:{v}" for p, v in inst.plugins]
    yield "metapropconfiguration", [(key := inst.uid(), {
        "id": key, "name": name, "description": f"{name} of the {target}", "target": target,
        "required": i % 3 == 0, "password": name == "api_token", "type": "string", "default": "",
        "constraints": {}, "filtered": i % 2 == 0,
    }) for i, (name, target) in enumerate((
        ("cost_center", "application"), ("owner", "application"), ("criticality", "application"),
        ("datacenter", "location"), ("api_token", "location"), ("support_level", "service"),
        ("backup_policy", "application"), ("region", "location"),
    ))]
    yield "repository", [(key := inst.uid(), {
        "id": key, "name": name, "repositoryType": kind, "repositoryUrl": url,
        "pluginId": plugin_ids[5], "configuration": {},
    }) for name, kind, url in (
        ("central", "maven", "https://repo.maven.apache.org/maven2"),
        ("internal", "http", "https://artifacts.example.com/a4c"),
        ("scripts", "git", "https://git.example.com/ops/scripts.git"),
    )]
    yield "csargitrepository", [(key := inst.uid(), {
        "id": key, "repositoryUrl": f"https://git.example.com/tosca/{c}.git", "username": "",
        "storedLocally": True, "importLocations": [
            {"branchId": b, "subPath": "", "lastImportedHash": _hash(c + b)}
            for b in ("master", "develop")
        ],
    }) for c in COMPONENTS[: min(20, max(3, inst.size // 6))]]
    yield "gitrepository", [(f"{app}-config", {
        "id": f"{app}-config", "gitType": "DeploymentConfig", "url": "", "local": True,
        "localPath": f"git/{app}.git", "branch": "master", "applicationId": app,
    }) for app in inst.git_repos]
    elements = list(dict.fromkeys(element for element, _, _ in inst.types))
    yield "suggestionentry", [(f"nodetype:{element}:port", {
        "id": f"nodetype:{element}:port", "esIndex": "toscaelement", "esType": "nodetype",
        "targetElementId": element, "targetProperty": "port",
        "suggestions": [str(rng.randint(1024, 9999))],
    }) for element in elements[:: max(1, len(elements) // 40)]]
    yield "auditconfiguration", [("auditconfiguration", {
        "id": "auditconfiguration", "enabled": True, "methodsConfiguration": {},
    })]


_DEPLOYMENT_PATH = "/rest/latest/applications/{app}/environments/{env}/deployment"
AUDITED = (
    ("APPLICATION", "create", "POST", "/rest/latest/applications", 201),
    ("DEPLOYMENT", "deploy", "POST", _DEPLOYMENT_PATH, 200),
    ("DEPLOYMENT", "undeploy", "DELETE", _DEPLOYMENT_PATH, 200),
    ("COMPONENT", "upload", "POST", "/rest/latest/csars", 200),
    ("USER", "login", "POST", "/login", 200),
    ("LOCATION", "update", "PUT", "/rest/latest/orchestrators/{orch}/locations/{loc}", 200),
)


def _audit(inst: Installation, count: int) -> Iterator[tuple[str, dict]]:
    rng = inst.rng
    for _ in range(count):
        user, (category, action, method, path, status) = rng.choice(inst.users), rng.choice(AUDITED)
        app = rng.choice(inst.apps)
        env, loc = rng.choice(app["envs"]), rng.choice(inst.locations)
        doc_id = inst.uid()
        yield doc_id, {
            "id": doc_id, "timestamp": _iso(inst.date()), "userName": user,
            "userFirstName": user.split(".")[0].capitalize(),
            "userLastName": user.split(".")[-1].capitalize(), "userEmail": f"{user}@example.com",
            "category": category, "action": action, "method": method,
            "path": path.format(app=app["id"], env=env["id"], orch=loc[2][0], loc=loc[0]),
            "requestBody": json.dumps({"name": app["id"]}) if method != "DELETE" else None,
            "requestParameters": {},
            "responseStatus": status if rng.random() < 0.9 else rng.choice((400, 403, 500)),
            "clientIp": f"10.0.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "alien4CloudUI": rng.random() < 0.8,
        }


def _deployment_logs(inst: Installation, per_deployment: int) -> Iterator[tuple[str, dict]]:
    rng = inst.rng
    operations = ("create", "configure", "start")
    for dep in inst.deployments:
        when = dep["start"]
        for i in range(per_deployment):
            when += timedelta(seconds=rng.randint(1, 90))
            doc_id, operation = inst.uid(), operations[i % len(operations)]
            yield doc_id, {
                "id": doc_id, "deploymentId": dep["id"], "deploymentPaaSId": dep["paas_id"],
                "level": rng.choices(("debug", "info", "warn", "error"), (2, 10, 2, 1))[0],
                "timestamp": _iso(when), "workflowId": "install", "executionId": dep["id"][:18],
                "nodeId": "Compute", "instanceId": "0", "interfaceName": "Standard",
                "operationName": operation, "type": "ansible",
                "content": f"{operation} {' '.join(rng.choices(WORDS, k=8))}",
            }
# fmt: on
