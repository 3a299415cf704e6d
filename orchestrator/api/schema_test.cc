// The field schema's three users: protobuf request bodies decoded by the
// table (hand-built wire bytes, field numbers as Kubernetes assigns them),
// strict/warn/ignore field validation at any depth, and the OpenAPI v3
// documents kubectl explains and strategic-merges with.
#include "orchestrator/types/schema.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "orchestrator/api/discovery.h"
#include "orchestrator/api/handler.h"
#include "orchestrator/api/patch.h"
#include "orchestrator/api/protobuf.h"
#include "orchestrator/storage/memory_object_store.h"
#include "orchestrator/types/registry.h"

namespace ganglion::orchestrator {
namespace {

// Protobuf wire bytes, written by hand so the decoder is checked against the
// encoding, not against itself.
class Pb {
 public:
  Pb& Varint(int field, uint64_t v) {
    Tag(field, 0);
    Raw(v);
    return *this;
  }
  Pb& Str(int field, std::string_view s) {
    Tag(field, 2);
    Raw(s.size());
    out_.append(s);
    return *this;
  }
  Pb& Msg(int field, const Pb& m) { return Str(field, m.out_); }
  // A map<string, string> entry.
  Pb& StrEntry(int field, std::string_view k, std::string_view v) {
    return Msg(field, Pb().Str(1, k).Str(2, v));
  }
  // A map<string, Message> entry.
  Pb& MsgEntry(int field, std::string_view k, const Pb& v) {
    return Msg(field, Pb().Str(1, k).Msg(2, v));
  }
  const std::string& bytes() const { return out_; }

 private:
  void Tag(int field, int wire) { Raw((static_cast<uint64_t>(field) << 3) | wire); }
  void Raw(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  std::string out_;
};

Pb Quantity(std::string_view s) {
  return Pb().Str(1, s);
}

std::string Envelope(std::string_view api_version, std::string_view kind, const Pb& object) {
  Pb unknown;
  unknown.Msg(1, Pb().Str(1, api_version).Str(2, kind))
      .Str(2, object.bytes())
      .Str(4, "application/vnd.kubernetes.protobuf");
  return std::string("k8s\0", 4) + unknown.bytes();
}

// What `kubectl create deployment web --image=nginx:1.27 -- sleep 1000` sends,
// plus ports, env, resources, a strategy with int-or-string values, and the
// zeros proto2 carries for plain fields.
Pb DeploymentMessage() {
  Pb labels_meta;
  labels_meta.Str(1, "web").Msg(8, Pb()).StrEntry(11, "app", "web");
  Pb container;
  container.Str(1, "web")
      .Str(2, "nginx:1.27")
      .Str(3, "sleep")
      .Str(3, "1000")
      .Msg(6, Pb().Str(1, "").Varint(3, 8080).Str(4, "TCP"))
      .Msg(7, Pb().Str(1, "MODE").Str(2, "prod"))
      .Msg(8, Pb().MsgEntry(1, "cpu", Quantity("500m")).MsgEntry(2, "memory", Quantity("64Mi")))
      .Str(14, "")     // imagePullPolicy: a plain string's zero
      .Varint(16, 0);  // stdin: a plain bool's zero
  Pb pod_spec;
  pod_spec.Msg(2, container)
      .Str(3, "Always")
      .Varint(4, 0)  // terminationGracePeriodSeconds: a pointer, so 0 is a value
      .Msg(1, Pb().Str(1, "scratch").Msg(2, Pb().Msg(2, Pb().Msg(2, Quantity("1Gi")))));
  Pb template_spec;
  template_spec.Msg(1, Pb().Msg(8, Pb()).StrEntry(11, "app", "web")).Msg(2, pod_spec);
  Pb strategy;
  strategy.Str(1, "RollingUpdate")
      .Msg(2, Pb().Msg(1, Pb().Varint(1, 0).Varint(2, 1))                  // maxUnavailable: 1
                  .Msg(2, Pb().Varint(1, 1).Varint(2, 0).Str(3, "25%")));  // maxSurge: "25%"
  Pb spec;
  spec.Varint(1, 3)
      .Msg(2, Pb().StrEntry(1, "app", "web"))
      .Msg(3, template_spec)
      .Msg(4, strategy)
      .Varint(5, 0)                          // minReadySeconds: plain, omitted
      .Varint(6, static_cast<uint64_t>(-1))  // revisionHistoryLimit: negative, sign-extended
      .Varint(99, 7);                        // a field this server does not know: skipped
  Pb deployment;
  deployment.Msg(1, labels_meta).Msg(2, spec).Msg(3, Pb());
  return deployment;
}

TEST(ProtobufDecodeTest, DeploymentAsKubectlWouldHaveSentItAsJson) {
  auto decoded = DecodeProtobufObject(Envelope("apps/v1", "Deployment", DeploymentMessage()));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const Json expected = Json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
      "replicas": 3,
      "selector": {"matchLabels": {"app": "web"}},
      "template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
          "containers": [{
            "name": "web", "image": "nginx:1.27", "command": ["sleep", "1000"],
            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "prod"}],
            "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}}
          }],
          "restartPolicy": "Always",
          "terminationGracePeriodSeconds": 0,
          "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}]
        }
      },
      "strategy": {"type": "RollingUpdate",
                   "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}},
      "revisionHistoryLimit": -1
    },
    "status": {}
  })");
  EXPECT_EQ(*decoded, expected) << decoded->dump(2);
}

TEST(ProtobufDecodeTest, ServiceIntOrStringAndUnknownKinds) {
  Pb service;
  service.Msg(1, Pb().Str(1, "s"))
      .Msg(2, Pb().Msg(1, Pb().Str(1, "80-8080")
                              .Str(2, "TCP")
                              .Varint(3, 80)
                              .Msg(4, Pb().Varint(1, 0).Varint(2, 8080)))
                  .StrEntry(2, "app", "s")
                  .Str(4, "ClusterIP"));
  auto decoded = DecodeProtobufObject(Envelope("v1", "Service", service));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ((*decoded)["spec"]["ports"][0]["targetPort"], 8080);
  EXPECT_EQ((*decoded)["spec"]["ports"][0]["port"], 80);
  EXPECT_EQ((*decoded)["spec"]["selector"]["app"], "s");
  EXPECT_EQ((*decoded)["spec"]["type"], "ClusterIP");

  auto unknown_kind = DecodeProtobufObject(Envelope("batch/v1", "Job", Pb()));
  EXPECT_TRUE(absl::IsUnimplemented(unknown_kind.status())) << unknown_kind.status();
  EXPECT_FALSE(DecodeProtobufObject("{\"kind\":\"Pod\"}").ok());
}

TEST(ProtobufDecodeTest, DeleteOptionsOfAnyGroupAndBindings) {
  // gracePeriodSeconds is a pointer: its 0 ("now") must survive.
  auto options = DecodeProtobufObject(
      Envelope("apps/v1", "DeleteOptions", Pb().Varint(1, 0).Str(4, "Foreground")));
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(*options, Json::parse(R"({"apiVersion":"apps/v1","kind":"DeleteOptions",
                                      "gracePeriodSeconds":0,"propagationPolicy":"Foreground"})"));
  auto binding = DecodeProtobufObject(Envelope(
      "v1", "Binding", Pb().Msg(1, Pb().Str(1, "p")).Msg(2, Pb().Str(1, "Node").Str(3, "n1"))));
  ASSERT_TRUE(binding.ok()) << binding.status();
  EXPECT_EQ((*binding)["target"], Json::parse(R"({"kind":"Node","name":"n1"})"));
}

TEST(ProtobufDecodeTest, MalformedMessagesAreErrors) {
  std::string truncated = Envelope("apps/v1", "Deployment", DeploymentMessage());
  // Cut inside the object: the envelope's raw field now claims more bytes than exist.
  truncated.resize(truncated.size() - 50);
  auto cut = DecodeProtobufObject(truncated);
  EXPECT_TRUE(absl::IsInvalidArgument(cut.status())) << cut.status();

  // A string where the schema says varint (replicas).
  auto wrong_wire =
      DecodeProtobufObject(Envelope("apps/v1", "Deployment", Pb().Msg(2, Pb().Str(1, "three"))));
  EXPECT_TRUE(absl::IsInvalidArgument(wrong_wire.status())) << wrong_wire.status();
  EXPECT_NE(wrong_wire.status().message().find("spec.replicas"), std::string::npos);

  // A map entry whose value claims to be longer than the entry.
  auto bad_entry = DecodeProtobufObject(
      Envelope("v1", "ConfigMap", Pb().Str(2, std::string("\x0a\x01k\x12\x09v", 5))));
  EXPECT_TRUE(absl::IsInvalidArgument(bad_entry.status())) << bad_entry.status();
  // Content encodings (gzip) are refused, not misread.
  Pb unknown;
  unknown.Msg(1, Pb().Str(1, "v1").Str(2, "ConfigMap")).Str(2, "x").Str(3, "gzip");
  EXPECT_TRUE(absl::IsUnimplemented(
      DecodeProtobufObject(std::string("k8s\0", 4) + unknown.bytes()).status()));
}

TEST(SchemaTest, EveryServedKindHasASchemaAndEveryReferenceResolves) {
  for (const ResourceType& t : AllResourceTypes()) {
    EXPECT_NE(SchemaOfKind(t.group, t.version, t.kind), nullptr) << t.kind;
  }
  EXPECT_NE(SchemaOfKind("autoscaling", "v1", "Scale"), nullptr);
  EXPECT_NE(SchemaOfKind("", "v1", "Binding"), nullptr);
  EXPECT_NE(SchemaOfKind("", "v1", "DeleteOptions"), nullptr);
  for (const TypeSchema* t : AllTypeSchemas()) {
    std::set<int> numbers;
    for (const FieldSchema& f : t->fields) {
      if (f.type == ValueType::kObject) {
        EXPECT_NE(FindTypeSchema(f.object_type), nullptr) << t->name << "." << f.json_name;
      }
      if (f.proto_number != 0) {
        EXPECT_TRUE(numbers.insert(f.proto_number).second) << t->name << "." << f.json_name;
      }
    }
  }
  const TypeSchema* volume = FindTypeSchema("io.k8s.api.core.v1.Volume");
  ASSERT_NE(volume, nullptr);
  const FieldSchema* empty_dir = FindField(*volume, "emptyDir");  // through the inline VolumeSource
  ASSERT_NE(empty_dir, nullptr);
  EXPECT_EQ(empty_dir->proto_number, 2);
}

// What the server itself adds (defaults) must be known to the schema, or a
// client sending an object back (kubectl replace, edit) would be rejected.
TEST(SchemaTest, DefaultedObjectsHaveOnlyKnownFields) {
  const Json pod_template = Json::parse(R"({"metadata":{"labels":{"app":"a"}},
      "spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}],
        "livenessProbe":{"httpGet":{"port":80}},"readinessProbe":{"tcpSocket":{"port":80}}}],
        "volumes":[{"name":"v","emptyDir":{}},{"name":"s","secret":{"secretName":"s"}},
                   {"name":"c","configMap":{"name":"c"}}]}})");
  const Json workload = {{"selector", {{"matchLabels", {{"app", "a"}}}}},
                         {"template", pod_template}};
  const std::map<std::string, Json> bodies = {
      {"Pod", {{"spec", pod_template["spec"]}}},
      {"Deployment", {{"spec", workload}}},
      {"ReplicaSet", {{"spec", workload}}},
      {"StatefulSet", {{"spec", workload}}},
      {"DaemonSet", {{"spec", workload}}},
      {"Service", Json::parse(R"({"spec":{"selector":{"app":"a"},"ports":[{"port":80}]}})")},
      {"PersistentVolume",
       Json::parse(R"({"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],
                        "hostPath":{"path":"/tmp"}}})")},
      {"PersistentVolumeClaim", Json::parse(R"({"spec":{"accessModes":["ReadWriteOnce"],
                        "resources":{"requests":{"storage":"1Gi"}}}})")},
      {"Endpoints", Json::parse(R"({"subsets":[{"addresses":[{"ip":"10.0.0.1"}],
                                               "ports":[{"port":80}]}]})")},
      {"Event", Json::parse(R"({"involvedObject":{"kind":"Pod","name":"p"},"reason":"R"})")},
  };
  for (const ResourceType& t : AllResourceTypes()) {
    Json o = {{"apiVersion", t.ApiVersion()}, {"kind", t.kind}, {"metadata", {{"name", "x"}}}};
    if (auto it = bodies.find(t.kind); it != bodies.end()) o.update(it->second);
    if (t.set_defaults) t.set_defaults(o);
    const TypeSchema* schema = SchemaOfKind(t.group, t.version, t.kind);
    ASSERT_NE(schema, nullptr) << t.kind;
    EXPECT_EQ(UnknownFields(*schema, o, false), std::vector<std::string>{}) << o.dump();
    EXPECT_EQ(TypeMismatch(*schema, o), "") << o.dump();
  }
}

class FieldValidationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(handler_.EnsureDefaultNamespaces().ok()); }

  HttpResponse Post(const std::string& path, const std::string& body, const std::string& mode) {
    HttpRequest r;
    r.method = "POST";
    r.path = path;
    r.body = body;
    r.content_type = "application/json";
    r.accept = "application/json";
    if (!mode.empty()) r.query["fieldValidation"] = mode;
    return handler_.Handle(r);
  }

  static Json Deployment(const std::string& name) {
    return Json::parse(R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":")" +
                       name + R"("},"spec":{"selector":{"matchLabels":{"app":"w"}},
        "template":{"metadata":{"labels":{"app":"w","any/key":"free"}},
        "spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":"1"}}},
                              {"name":"d","image":"i","imagePullPolcy":"Always"}],
                "volumes":[{"name":"v","emptyDir":{"medum":"Memory"}}]}}}})");
  }

  MemoryObjectStore store_;
  ApiHandler handler_{store_, "127.0.0.1:6443"};
};

constexpr char kDeployments[] = "/apis/apps/v1/namespaces/default/deployments";

TEST_F(FieldValidationTest, StrictRejectsUnknownFieldsAtAnyDepth) {
  auto r = Post(kDeployments, Deployment("strict").dump(), "Strict");
  ASSERT_EQ(r.status, 400) << r.body;
  const Json status = Json::parse(r.body);
  EXPECT_EQ(status["reason"], "BadRequest");
  EXPECT_EQ(status["message"],
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding "
            "error: unknown field \"spec.template.spec.containers[1].imagePullPolcy\", unknown "
            "field \"spec.template.spec.volumes[0].emptyDir.medum\"");
  // Nothing was stored.
  HttpRequest get;
  get.method = "GET";
  get.path = std::string(kDeployments) + "/strict";
  EXPECT_EQ(handler_.Handle(get).status, 404);
}

TEST_F(FieldValidationTest, WarnDropsAndWarnsIgnoreDropsSilently) {
  auto warned = Post(kDeployments, Deployment("warned").dump(), "");  // Warn is the default
  ASSERT_EQ(warned.status, 201) << warned.body;
  EXPECT_EQ(
      warned.warnings,
      (std::vector<std::string>{"unknown field \"spec.template.spec.containers[1].imagePullPolcy\"",
                                "unknown field \"spec.template.spec.volumes[0].emptyDir.medum\""}));
  const Json stored = Json::parse(warned.body);
  const Json& pod = stored["spec"]["template"]["spec"];
  EXPECT_FALSE(pod["containers"][1].contains("imagePullPolcy"));
  EXPECT_EQ(pod["containers"][1]["imagePullPolicy"], "Always");  // the default, not the typo's
  EXPECT_FALSE(pod["volumes"][0]["emptyDir"].contains("medum"));
  EXPECT_EQ(stored["spec"]["template"]["metadata"]["labels"]["any/key"], "free");

  auto ignored = Post(kDeployments, Deployment("ignored").dump(), "Ignore");
  ASSERT_EQ(ignored.status, 201) << ignored.body;
  EXPECT_TRUE(ignored.warnings.empty());

  auto bad_mode = Post(kDeployments, Deployment("x").dump(), "Loose");
  EXPECT_EQ(bad_mode.status, 400);
}

TEST_F(FieldValidationTest, DuplicateFieldsAndTopLevelAndMetadataTypos) {
  const std::string duplicated =
      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"e"},
          "data":{"a":"1"},"dta":{}})";
  auto r = Post("/api/v1/namespaces/default/configmaps", duplicated, "Strict");
  ASSERT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(Json::parse(r.body)["message"],
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: "
            "duplicate field \"metadata.name\", unknown field \"dta\"");
  auto lables = Post("/api/v1/namespaces/default/configmaps",
                     R"({"metadata":{"name":"l","lables":{"a":"b"}}})", "Strict");
  EXPECT_NE(Json::parse(lables.body)["message"].get<std::string>().find(
                "unknown field \"metadata.lables\""),
            std::string::npos);
}

TEST_F(FieldValidationTest, ValuesOfTheWrongTypeAreRejectedInEveryMode) {
  auto message = [&](const std::string& body, const std::string& mode) {
    auto r = Post(kDeployments, body, mode);
    EXPECT_EQ(r.status, 400) << r.body;
    return Json::parse(r.body)["message"].get<std::string>();
  };
  Json d = Deployment("typed");
  d["spec"]["template"]["spec"]["containers"][1].erase("imagePullPolcy");
  d["spec"]["template"]["spec"]["volumes"][0]["emptyDir"].erase("medum");
  Json replicas = d;
  replicas["spec"]["replicas"] = "three";
  EXPECT_EQ(message(replicas.dump(), "Ignore"),
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot "
            "unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32");
  Json containers = d;
  containers["spec"]["template"]["spec"]["containers"] = {{"name", "c"}};
  EXPECT_EQ(message(containers.dump(), "Strict"),
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot "
            "unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type "
            "[]v1.Container");
  Json port = d;
  port["spec"]["template"]["spec"]["containers"][0]["ports"] = {{{"containerPort", 80.5}}};
  EXPECT_EQ(message(port.dump(), ""),
            "Deployment in version \"v1\" cannot be handled as a Deployment: json: cannot "
            "unmarshal number 80.5 into Go struct field "
            "ContainerPort.spec.template.spec.containers.ports.containerPort of type int32");
  Json quantity = d;
  quantity["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "1.5.0";
  EXPECT_EQ(message(quantity.dump(), "Ignore"),
            "Deployment in version \"v1\" cannot be handled as a Deployment: quantities must "
            "match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
  quantity["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2Gb";
  EXPECT_NE(message(quantity.dump(), "Ignore").find("quantities must match"), std::string::npos);
  // Every form a field may take: null, numeric quantities, both int-or-string forms.
  Json fine = d;
  fine["spec"]["replicas"] = nullptr;
  fine["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] = {
      {"cpu", 0.5}, {"memory", "64Mi"}, {"ephemeral-storage", "1e9"}, {"hugepages-2Mi", ".5k"}};
  fine["spec"]["strategy"] = {{"rollingUpdate", {{"maxSurge", 1}, {"maxUnavailable", "10%"}}}};
  const TypeSchema* schema = SchemaOfKind("apps", "v1", "Deployment");
  ASSERT_NE(schema, nullptr);
  EXPECT_EQ(TypeMismatch(*schema, fine), "");
  auto created = Post(kDeployments, fine.dump(), "Strict");
  EXPECT_EQ(created.status, 201) << created.body;
  EXPECT_EQ(Json::parse(created.body)["spec"]["replicas"], 1);  // null is unset: defaulted
}

TEST(SchemaMergeTest, StrategicMergeFollowsTheSchemasStrategies) {
  const Json pod = Json::parse(R"({"metadata":{"finalizers":["a"]},"spec":{
      "tolerations":[{"key":"k1","operator":"Exists"}],
      "containers":[{"name":"c","image":"i","volumeMounts":[{"name":"v","mountPath":"/a"}]}]}})");
  auto out = ApplyStrategicMergePatch(pod, Json::parse(R"({"metadata":{"finalizers":["b"]},
      "spec":{"tolerations":[{"key":"k2","operator":"Exists"}],
      "containers":[{"name":"c","volumeMounts":[{"name":"w","mountPath":"/b"}]}]}})"),
                                      "Pod");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)["metadata"]["finalizers"], Json::parse(R"(["a","b"])"));  // merged as a set
  EXPECT_EQ((*out)["spec"]["tolerations"],
            Json::parse(R"([{"key":"k2","operator":"Exists"}])"));        // no merge key: replaced
  EXPECT_EQ((*out)["spec"]["containers"][0]["image"], "i");               // merged by name
  EXPECT_EQ((*out)["spec"]["containers"][0]["volumeMounts"].size(), 2u);  // by mountPath
  const Json node = Json::parse(R"({"spec":{"podCIDRs":["10.0.0.0/24"]},
      "status":{"addresses":[{"type":"InternalIP","address":"1.1.1.1"}]}})");
  auto merged = ApplyStrategicMergePatch(node, Json::parse(R"({"spec":{"podCIDRs":["fd00::/64"]},
      "status":{"addresses":[{"type":"Hostname","address":"n1"}]}})"),
                                         "Node");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ((*merged)["spec"]["podCIDRs"].size(), 2u);
  EXPECT_EQ((*merged)["status"]["addresses"].size(), 2u);
}

TEST(UnknownFieldsTest, MapsOfObjectsAndArraysAreWalked) {
  // No served kind has a map whose values are objects, so build one: a map of containers.
  static constexpr FieldSchema kFields[] = {{"byName", Shape::kMap, ValueType::kObject,
                                             "io.k8s.api.core.v1.Container", 1, kOmitEmpty, "", ""},
                                            {"list", Shape::kList, ValueType::kObject,
                                             "io.k8s.api.core.v1.EnvVar", 2, kOmitEmpty, "", ""}};
  const TypeSchema type{"test.Holder", kFields};
  Json object = Json::parse(R"({"byName":{"a":{"name":"a","imag":"x"},"b":{"name":"b"}},
                                "list":[{"name":"X"},{"name":"Y","valeu":"1"}],"extra":1})");
  Json copy = object;
  EXPECT_EQ(UnknownFields(type, copy, /*drop=*/false),
            (std::vector<std::string>{"byName.a.imag", "extra", "list[1].valeu"}));
  EXPECT_EQ(copy, object);
  UnknownFields(type, copy, /*drop=*/true);
  EXPECT_EQ(copy, Json::parse(R"({"byName":{"a":{"name":"a"},"b":{"name":"b"}},
                                  "list":[{"name":"X"},{"name":"Y"}]})"));
}

TEST(OpenApiSchemaTest, FieldsTypesMergeKeysAndClosedReferences) {
  auto doc = OpenApiV3Document("apis/apps/v1");
  ASSERT_TRUE(doc.has_value());
  const Json& schemas = (*doc)["components"]["schemas"];
  const Json& deployment = schemas["io.k8s.api.apps.v1.Deployment"];
  EXPECT_EQ(deployment["x-kubernetes-group-version-kind"][0]["kind"], "Deployment");
  EXPECT_EQ(deployment["properties"]["spec"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec");
  const Json& spec = schemas["io.k8s.api.apps.v1.DeploymentSpec"];
  EXPECT_EQ(spec["required"], Json::array({"selector", "template"}));
  EXPECT_EQ(spec["properties"]["replicas"]["type"], "integer");
  EXPECT_EQ(spec["properties"]["replicas"]["format"], "int32");
  EXPECT_EQ(spec["properties"]["replicas"]["description"], "How many pods to run (default 1).");
  EXPECT_EQ(spec["properties"]["strategy"]["x-kubernetes-patch-strategy"], "retainKeys");
  const Json& containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
  EXPECT_EQ(containers["type"], "array");
  EXPECT_EQ(containers["x-kubernetes-patch-merge-key"], "name");
  EXPECT_EQ(containers["x-kubernetes-patch-strategy"], "merge");
  const Json& limits = schemas["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"];
  EXPECT_EQ(limits["additionalProperties"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.api.resource.Quantity");
  // Volume's inline VolumeSource: its members are the volume's own properties.
  EXPECT_TRUE(schemas["io.k8s.api.core.v1.Volume"]["properties"].contains("emptyDir"));
  EXPECT_EQ(
      schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"][0]["group"],
      "autoscaling");
  // Every reference resolves inside the same document.
  std::vector<const Json*> todo = {&*doc};
  size_t refs = 0;
  while (!todo.empty()) {
    const Json* j = todo.back();
    todo.pop_back();
    if (j->is_object()) {
      if (auto it = j->find("$ref"); it != j->end()) {
        ++refs;
        const std::string name = it->get<std::string>().substr(sizeof("#/components/schemas/") - 1);
        EXPECT_TRUE(schemas.contains(name)) << name;
      }
    }
    if (j->is_structured()) {
      for (const Json& child : *j) todo.push_back(&child);
    }
  }
  EXPECT_GT(refs, 100u);
}

}  // namespace
}  // namespace ganglion::orchestrator
