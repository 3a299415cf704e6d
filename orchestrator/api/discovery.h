// The documents clients read before anything else: /version, the legacy
// discovery documents (/api, /apis, /apis/<group>, /api/v1 and
// /apis/<group>/<version> resource lists with verbs, short names and
// categories) and OpenAPI v3 (/openapi/v3 and one document per group
// version). The OpenAPI documents declare, per kind, the operations with the
// `fieldValidation` query parameter (which is what kubectl checks before it
// trusts the server to validate fields) and the field schemas of the kinds and
// everything they reach, from types/schema.h: types, required fields,
// x-kubernetes-group-version-kind, and the patch strategy and merge key of
// the lists kubectl's strategic merge (`apply`) merges by key.
// Pure functions of the registry and the schema tables.
#pragma once

#include <optional>
#include <string>

#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {

Json VersionDocument();
Json CoreApiVersions(const std::string& server_address);
Json ApiGroupList();
std::optional<Json> ApiGroup(const std::string& group);
// Resource list of group/version ("" group: core), or nullopt if not served.
std::optional<Json> ApiResourceList(const std::string& group, const std::string& version);

Json OpenApiV3Index();
// `gv_path`: "api/v1" or "apis/apps/v1".
std::optional<Json> OpenApiV3Document(const std::string& gv_path);

}  // namespace ganglion::orchestrator
