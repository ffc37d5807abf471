package k8s

// The App Mesh controller's CRDs (appmesh.k8s.aws/v1beta2), written for
// meshd: the upstream controller module is not on the Go module proxy, so
// the schemas are built here from the controller's documented API (field
// names, enums, ranges, required members, status subresource, ARN/AGE
// printer columns, unknown top-level fields preserved) and written to crds/.
// TestCRDsGenerated fails when crds/ differs from what this file builds;
// -update rewrites it.

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite crds/ from the schema builder")

type schema = apiextv1.JSONSchemaProps

type fields map[string]schema

const (
	appmeshGroup   = "appmesh.k8s.aws"
	appmeshVersion = "v1beta2"
	noLimit        = -1
)

func describe(s schema, desc string) schema { s.Description = desc; return s }

func str(desc string) schema { return schema{Type: "string", Description: desc} }

func strLen(desc string, min, max int64) schema {
	s := str(desc)
	if min >= 0 {
		s.MinLength = &min
	}
	if max >= 0 {
		s.MaxLength = &max
	}
	return s
}

func enum(desc string, values ...string) schema {
	s := str(desc)
	for _, v := range values {
		raw, _ := json.Marshal(v)
		s.Enum = append(s.Enum, apiextv1.JSON{Raw: raw})
	}
	return s
}

func integer(desc string, min, max int64) schema {
	s := schema{Type: "integer", Format: "int64", Description: desc}
	if min != noLimit {
		f := float64(min)
		s.Minimum = &f
	}
	if max != noLimit {
		f := float64(max)
		s.Maximum = &f
	}
	return s
}

func boolean(desc string) schema { return schema{Type: "boolean", Description: desc} }

func array(desc string, items schema, min, max int64) schema {
	s := schema{Type: "array", Description: desc, Items: &apiextv1.JSONSchemaPropsOrArray{Schema: &items}}
	if min != noLimit {
		s.MinItems = &min
	}
	if max != noLimit {
		s.MaxItems = &max
	}
	return s
}

func object(desc string, props fields, required ...string) schema {
	for _, r := range required {
		if _, ok := props[r]; !ok {
			panic("required field " + r + " is not a property")
		}
	}
	sort.Strings(required)
	return schema{Type: "object", Description: desc, Properties: props, Required: required}
}

func stringMap(desc string) schema {
	s := str("")
	return schema{Type: "object", Description: desc, AdditionalProperties: &apiextv1.JSONSchemaPropsOrBool{Allows: true, Schema: &s}}
}

// Shared shapes.

func port(desc string) schema      { return integer(desc, 1, 65535) }
func matchPort(desc string) schema { return integer(desc, 0, 65535) }

func duration(desc string) schema {
	return object(desc, fields{
		"unit":  enum("A unit of time.", "s", "ms"),
		"value": integer("A number of time units.", 0, noLimit),
	}, "unit", "value")
}

func labelSelector(desc string) schema {
	return object(desc, fields{
		"matchExpressions": array("A list of label selector requirements; the requirements are ANDed.", object("", fields{
			"key":      str("The label key that the selector applies to."),
			"operator": str("The key's relationship to the values: In, NotIn, Exists or DoesNotExist."),
			"values":   array("", str(""), noLimit, noLimit),
		}, "key", "operator"), noLimit, noLimit),
		"matchLabels": stringMap("{key,value} pairs, each equivalent to an In requirement with one value."),
	})
}

func meshRef() schema {
	return object("The Mesh this resource belongs to. Populated by the App Mesh controller's webhook; meshd reads it when present.", fields{
		"name": str("Name of the Mesh."),
		"uid":  str("UID of the Mesh."),
	}, "name", "uid")
}

func ref(kind string) schema {
	return object("Reference to a "+kind+" in the cluster.", fields{
		"name":      str("Name of the " + kind + "."),
		"namespace": str("Namespace of the " + kind + "; defaults to the referencing object's namespace."),
	}, "name")
}

func awsName(def string) schema {
	return str("The App Mesh name of the resource; defaults to " + def + ".")
}

func conditions(kind string) schema {
	return array("The current "+kind+" status.", object("", fields{
		"type":               str("Type of " + kind + " condition."),
		"status":             str("Status of the condition, one of True, False, Unknown."),
		"lastTransitionTime": schema{Type: "string", Format: "date-time", Description: "Last time the condition transitioned from one status to another."},
		"reason":             str("The reason for the condition's last transition."),
		"message":            str("A human readable message indicating details about the transition."),
	}, "status", "type"), noLimit, noLimit)
}

func status(kind, arnField string, extra fields) schema {
	f := fields{
		"conditions":         conditions(kind),
		"observedGeneration": integer("The generation observed by the controller.", noLimit, noLimit),
	}
	if arnField != "" {
		f[arnField] = str("The App Mesh " + kind + "'s Amazon Resource Name.")
	}
	for k, v := range extra {
		f[k] = v
	}
	return object(kind+"Status is the observed state of a "+kind+".", f)
}

var protocols = []string{"grpc", "http", "http2", "tcp"}
var gatewayProtocols = []string{"grpc", "http", "http2"}

func portMapping(protos []string) schema {
	return object("The port and protocol the listener accepts.", fields{
		"port":     port("The port number."),
		"protocol": enum("The protocol.", protos...),
	}, "port", "protocol")
}

func healthCheck(protos []string) schema {
	return object("The health check policy of the listener.", fields{
		"healthyThreshold":   integer("Consecutive successful checks before the target is healthy.", 2, 10),
		"intervalMillis":     integer("Time between checks, in milliseconds.", 5000, 300000),
		"path":               str("Destination path of an HTTP or HTTP/2 check."),
		"port":               port("Destination port; defaults to the listener's port."),
		"protocol":           enum("Protocol of the check.", protos...),
		"timeoutMillis":      integer("Time to wait for a response, in milliseconds.", 2000, 60000),
		"unhealthyThreshold": integer("Consecutive failed checks before the target is unhealthy.", 2, 10),
	}, "healthyThreshold", "intervalMillis", "protocol", "timeoutMillis", "unhealthyThreshold")
}

func connectionPool(gateway bool) schema {
	f := fields{
		"http": object("HTTP connection pool.", fields{
			"maxConnections":     integer("Maximum outbound TCP connections to all hosts.", 1, noLimit),
			"maxPendingRequests": integer("Maximum requests queued while waiting for a connection.", 1, noLimit),
		}, "maxConnections"),
		"http2": object("HTTP/2 connection pool.", fields{"maxRequests": integer("Maximum in-flight requests.", 1, noLimit)}, "maxRequests"),
		"grpc":  object("gRPC connection pool.", fields{"maxRequests": integer("Maximum in-flight requests.", 1, noLimit)}, "maxRequests"),
	}
	if !gateway {
		f["tcp"] = object("TCP connection pool.", fields{"maxConnections": integer("Maximum outbound TCP connections.", 1, noLimit)}, "maxConnections")
	}
	return object("The connection pool of the listener; set one protocol.", f)
}

func outlierDetection() schema {
	return object("Outlier detection of the listener.", fields{
		"maxServerErrors":      integer("Server errors before ejection.", 1, noLimit),
		"interval":             duration("Time between ejection sweep analysis."),
		"baseEjectionDuration": duration("Base ejection time, multiplied by the number of ejections."),
		"maxEjectionPercent":   integer("Maximum percentage of hosts that can be ejected.", 0, 100),
	}, "baseEjectionDuration", "interval", "maxEjectionPercent", "maxServerErrors")
}

func listenerTimeout() schema {
	http := func(desc string) schema {
		return object(desc, fields{
			"perRequest": duration("Per-request timeout."),
			"idle":       duration("Idle timeout."),
		})
	}
	return object("Timeouts of the listener; set the listener's protocol.", fields{
		"tcp":   object("TCP timeouts.", fields{"idle": duration("Idle timeout.")}),
		"http":  http("HTTP timeouts."),
		"http2": http("HTTP/2 timeouts."),
		"grpc":  http("gRPC timeouts."),
	})
}

func fileCertificate() schema {
	return object("A certificate from local files.", fields{
		"certificateChain": strLen("Path to the certificate chain.", 1, 255),
		"privateKey":       strLen("Path to the private key.", 1, 255),
	}, "certificateChain", "privateKey")
}

func sdsRef(desc string) schema {
	return object(desc, fields{"secretName": str("The SDS secret name.")}, "secretName")
}

func sanMatch() schema {
	return object("Subject alternative names to accept.", fields{
		"match": object("The matcher.", fields{
			"exact": array("Names that must match exactly.", str(""), noLimit, noLimit),
		}, "exact"),
	}, "match")
}

func trustFile() schema {
	return object("Trust from a local file.", fields{"certificateChain": strLen("Path to the CA bundle.", 1, 255)}, "certificateChain")
}

func trustACM() schema {
	return object("Trust from ACM Private CA.", fields{
		"certificateAuthorityARNs": array("ARNs of the certificate authorities.", str(""), 1, 3),
	}, "certificateAuthorityARNs")
}

// listenerTLS: virtual nodes trust file|sds; virtual gateways also acm.
func listenerTLS(gateway bool) schema {
	trust := fields{"file": trustFile(), "sds": sdsRef("Trust from an SDS secret.")}
	if gateway {
		trust["acm"] = trustACM()
	}
	cert := fields{
		"acm":  object("An ACM certificate.", fields{"certificateARN": str("The ACM certificate's ARN.")}, "certificateARN"),
		"file": fileCertificate(),
		"sds":  sdsRef("A certificate from an SDS secret."),
	}
	return object("TLS of the listener.", fields{
		"certificate": object("The listener's certificate; set one source.", cert),
		"mode":        enum("TLS mode.", "DISABLED", "PERMISSIVE", "STRICT"),
		"validation": object("Client certificate validation (mutual TLS).", fields{
			"subjectAlternativeNames": sanMatch(),
			"trust":                   object("Where the trusted CAs come from; set one source.", trust),
		}, "trust"),
	}, "certificate", "mode")
}

func clientPolicy() schema {
	return object("A client policy.", fields{
		"tls": object("TLS client policy.", fields{
			"enforce": boolean("Whether TLS is enforced (default true)."),
			"ports":   array("Ports the policy applies to; all when empty.", port(""), noLimit, noLimit),
			"certificate": object("The client certificate for mutual TLS; set one source.", fields{
				"file": fileCertificate(),
				"sds":  sdsRef("A certificate from an SDS secret."),
			}),
			"validation": object("Server certificate validation.", fields{
				"subjectAlternativeNames": sanMatch(),
				"trust": object("Where the trusted CAs come from; set one source.", fields{
					"acm":  trustACM(),
					"file": trustFile(),
					"sds":  sdsRef("Trust from an SDS secret."),
				}),
			}, "trust"),
		}, "validation"),
	})
}

func backendDefaults() schema {
	return object("Defaults for every backend.", fields{"clientPolicy": clientPolicy()})
}

func accessLogging() schema {
	kv := object("", fields{
		"key":   strLen("", 1, 100),
		"value": strLen("", 1, 100),
	}, "key", "value")
	return object("Logging of the proxy.", fields{
		"accessLog": object("The access log.", fields{
			"file": object("An access log file.", fields{
				"path": strLen("Path of the file (/dev/stdout for the container log).", 1, 255),
				"format": object("The log format; set one.", fields{
					"json": array("JSON format: keys and values.", kv, noLimit, noLimit),
					"text": strLen("Text format.", 1, 1000),
				}),
			}, "path"),
		}),
	})
}

func stringMatch(desc string, withRange bool) schema {
	f := fields{
		"exact":  strLen("Exact value.", 1, 255),
		"prefix": strLen("Prefix.", 1, 255),
		"suffix": strLen("Suffix.", 1, 255),
		"regex":  strLen("Regular expression.", 1, 255),
	}
	if withRange {
		f["range"] = object("A numeric range [start, end).", fields{
			"start": integer("", noLimit, noLimit),
			"end":   integer("", noLimit, noLimit),
		}, "end", "start")
	}
	return object(desc, f)
}

func headerMatches(desc string) schema {
	return array(desc, object("", fields{
		"name":   strLen("Header name.", 1, 50),
		"match":  stringMatch("How to match the value.", true),
		"invert": boolean("Invert the match."),
	}, "name"), 1, 10)
}

func queryParameters() schema {
	return array("Query parameters to match.", object("", fields{
		"name":  str("Parameter name."),
		"match": object("How to match the value.", fields{"exact": str("Exact value.")}),
	}, "name"), 1, 10)
}

func pathMatch() schema {
	return object("The path to match; set exact or regex.", fields{
		"exact": strLen("Exact path.", 1, 255),
		"regex": strLen("Path regular expression.", 1, 255),
	})
}

var methods = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

func weightedTargets() schema {
	return array("The targets and their relative weights.", object("", fields{
		"virtualNodeRef": ref("VirtualNode"),
		"virtualNodeARN": str("ARN of an App Mesh virtual node; set this or virtualNodeRef."),
		"weight":         integer("Relative weight.", 0, 100),
		"port":           matchPort("Target port of a multi-listener node."),
	}, "weight"), 1, 10)
}

func routeAction() schema {
	return object("The action when a request matches.", fields{"weightedTargets": weightedTargets()}, "weightedTargets")
}

func retryPolicy(grpc bool) schema {
	f := fields{
		"httpRetryEvents": array("HTTP retry events.", enum("", "server-error", "gateway-error", "client-error", "stream-error"), 1, 25),
		"tcpRetryEvents":  array("TCP retry events.", enum("", "connection-error"), 1, 1),
		"maxRetries":      integer("Maximum retry attempts.", 0, noLimit),
		"perRetryTimeout": duration("Timeout of each attempt."),
	}
	if grpc {
		f["grpcRetryEvents"] = array("gRPC retry events.", enum("", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"), 1, 5)
	}
	return object("Retries.", f, "maxRetries", "perRetryTimeout")
}

func routeTimeout() schema {
	return object("Timeouts.", fields{
		"perRequest": duration("Per-request timeout."),
		"idle":       duration("Idle timeout."),
	})
}

func httpRoute(desc string) schema {
	return object(desc, fields{
		"match": object("Which requests the route matches.", fields{
			"prefix":          str("Path prefix."),
			"path":            pathMatch(),
			"headers":         headerMatches("Headers to match."),
			"method":          enum("HTTP method.", methods...),
			"scheme":          enum("Scheme.", "http", "https"),
			"queryParameters": queryParameters(),
			"port":            matchPort("Listener port of a multi-listener router."),
		}),
		"action":      routeAction(),
		"retryPolicy": retryPolicy(false),
		"timeout":     routeTimeout(),
	}, "action", "match")
}

func grpcRoute() schema {
	return object("A gRPC route.", fields{
		"match": object("Which requests the route matches.", fields{
			"serviceName": str("Fully qualified gRPC service name."),
			"methodName":  strLen("Method name; needs serviceName.", 1, 50),
			"metadata": array("Metadata to match.", object("", fields{
				"name":   strLen("Metadata name.", 1, 50),
				"match":  stringMatch("How to match the value.", true),
				"invert": boolean("Invert the match."),
			}, "name"), 1, 10),
			"port": matchPort("Listener port of a multi-listener router."),
		}),
		"action":      routeAction(),
		"retryPolicy": retryPolicy(true),
		"timeout":     routeTimeout(),
	}, "action", "match")
}

func tcpRoute() schema {
	return object("A TCP route.", fields{
		"action":  routeAction(),
		"match":   object("Which connections the route matches.", fields{"port": matchPort("Listener port of a multi-listener router.")}),
		"timeout": object("Timeouts.", fields{"idle": duration("Idle timeout.")}),
	}, "action")
}

func hostnameMatch() schema {
	return object("The host name to match; set exact or suffix.", fields{
		"exact":  strLen("Exact host name.", 1, 253),
		"suffix": strLen("Host name suffix.", 1, 253),
	})
}

func gatewayTarget() schema {
	return object("Where matching traffic goes.", fields{
		"virtualService": object("The virtual service; set virtualServiceRef or virtualServiceARN.", fields{
			"virtualServiceRef": ref("VirtualService"),
			"virtualServiceARN": str("ARN of an App Mesh virtual service."),
		}),
		"port": matchPort("Port of a multi-listener virtual service provider."),
	}, "virtualService")
}

func defaultTargetHostname() schema {
	return object("Host name rewrite.", fields{
		"defaultTargetHostname": enum("Rewrite the host to the target virtual service's name (default ENABLED).", "ENABLED", "DISABLED"),
	})
}

func gatewayHTTPRoute(desc string) schema {
	return object(desc, fields{
		"match": object("Which requests the route matches.", fields{
			"prefix":          str("Path prefix."),
			"path":            pathMatch(),
			"headers":         headerMatches("Headers to match."),
			"method":          enum("HTTP method.", methods...),
			"hostname":        hostnameMatch(),
			"queryParameters": queryParameters(),
			"port":            matchPort("Listener port of a multi-listener gateway."),
		}),
		"action": object("The action when a request matches.", fields{
			"target": gatewayTarget(),
			"rewrite": object("Rewrites before forwarding.", fields{
				"prefix": object("Prefix rewrite.", fields{
					"defaultPrefix": enum("Rewrite the matched prefix to / (default ENABLED).", "ENABLED", "DISABLED"),
					"value":         strLen("The new prefix.", 1, 255),
				}),
				"path":     object("Path rewrite.", fields{"exact": strLen("The new path.", 1, 255)}),
				"hostname": defaultTargetHostname(),
			}),
		}, "target"),
	}, "action", "match")
}

func gatewayGRPCRoute() schema {
	return object("A gRPC gateway route.", fields{
		"match": object("Which requests the route matches.", fields{
			"serviceName": str("Fully qualified gRPC service name."),
			"hostname":    hostnameMatch(),
			"metadata": array("Metadata to match.", object("", fields{
				"name":   strLen("Metadata name.", 1, 50),
				"match":  stringMatch("How to match the value.", true),
				"invert": boolean("Invert the match."),
			}, "name"), 1, 10),
			"port": matchPort("Listener port of a multi-listener gateway."),
		}),
		"action": object("The action when a request matches.", fields{
			"target":  gatewayTarget(),
			"rewrite": object("Rewrites before forwarding.", fields{"hostname": defaultTargetHostname()}),
		}, "target"),
	}, "action", "match")
}

// The seven kinds.

type kindDef struct {
	kind, plural, singular string
	clusterScoped          bool
	arnField               string // status field shown in the ARN column
	spec                   schema
	statusExtra            fields
}

func kinds() []kindDef {
	return []kindDef{
		{
			kind: "Mesh", plural: "meshes", singular: "mesh", clusterScoped: true, arnField: "meshARN",
			spec: object("MeshSpec is the desired state of a Mesh (App Mesh API MeshSpec).", fields{
				"awsName":           awsName("the Mesh's name"),
				"namespaceSelector": labelSelector("Selects the namespaces whose App Mesh resources belong to this mesh: empty selects all, absent none."),
				"egressFilter": object("Where the mesh's proxies may send traffic that does not go to a mesh resource.", fields{
					"type": enum("The egress filter type.", "ALLOW_ALL", "DROP_ALL"),
				}, "type"),
				"meshOwner": str("The AWS account ID of the mesh owner, when it is not your own."),
				"meshServiceDiscovery": object("Mesh-wide service discovery settings.", fields{
					"ipPreference": enum("The IP version preference.", "IPv6_ONLY", "IPv4_ONLY"),
				}),
			}),
		},
		{
			kind: "VirtualNode", plural: "virtualnodes", singular: "virtualnode", arnField: "virtualNodeARN",
			spec: object("VirtualNodeSpec is the desired state of a VirtualNode (App Mesh API VirtualNodeSpec).", fields{
				"awsName":     awsName("<name>_<namespace>"),
				"podSelector": labelSelector("Selects the pods that run this virtual node's proxy."),
				"listeners": array("The listeners of the node.", object("", fields{
					"portMapping":      portMapping(protocols),
					"healthCheck":      healthCheck(protocols),
					"outlierDetection": outlierDetection(),
					"connectionPool":   connectionPool(false),
					"tls":              listenerTLS(false),
					"timeout":          listenerTimeout(),
				}, "portMapping"), noLimit, noLimit),
				"serviceDiscovery": object("How the node's endpoints are found; set dns or awsCloudMap.", fields{
					"awsCloudMap": object("AWS Cloud Map service discovery.", fields{
						"namespaceName": strLen("The Cloud Map namespace.", 1, 1024),
						"serviceName":   strLen("The Cloud Map service.", 1, 1024),
						"attributes": array("Instance attributes to filter on.", object("", fields{
							"key":   strLen("", 1, 255),
							"value": strLen("", 1, 1024),
						}, "key", "value"), noLimit, noLimit),
					}, "namespaceName", "serviceName"),
					"dns": object("DNS service discovery.", fields{
						"hostname":     str("The DNS name."),
						"responseType": enum("How DNS answers are used.", "ENDPOINTS", "LOADBALANCER"),
					}, "hostname"),
				}),
				"backends": array("The virtual services this node sends traffic to.", object("", fields{
					"virtualService": object("A backend virtual service; set virtualServiceRef or virtualServiceARN.", fields{
						"virtualServiceRef": ref("VirtualService"),
						"virtualServiceARN": str("ARN of an App Mesh virtual service."),
						"clientPolicy":      clientPolicy(),
					}),
				}, "virtualService"), noLimit, noLimit),
				"backendGroups":   array("BackendGroups whose virtual services are backends of this node; name * means every VirtualService in the namespace.", ref("BackendGroup"), noLimit, noLimit),
				"backendDefaults": backendDefaults(),
				"logging":         accessLogging(),
				"meshRef":         meshRef(),
			}),
		},
		{
			kind: "VirtualService", plural: "virtualservices", singular: "virtualservice", arnField: "virtualServiceARN",
			spec: object("VirtualServiceSpec is the desired state of a VirtualService (App Mesh API VirtualServiceSpec).", fields{
				"awsName": awsName("<name>.<namespace>"),
				"provider": object("What serves the virtual service; set virtualNode or virtualRouter.", fields{
					"virtualNode": object("A virtual node provider.", fields{
						"virtualNodeRef": ref("VirtualNode"),
						"virtualNodeARN": str("ARN of an App Mesh virtual node."),
					}),
					"virtualRouter": object("A virtual router provider.", fields{
						"virtualRouterRef": ref("VirtualRouter"),
						"virtualRouterARN": str("ARN of an App Mesh virtual router."),
					}),
				}),
				"meshRef": meshRef(),
			}),
		},
		{
			kind: "VirtualRouter", plural: "virtualrouters", singular: "virtualrouter", arnField: "virtualRouterARN",
			statusExtra: fields{"routeARNs": stringMap("The App Mesh ARN of each route, by route name.")},
			spec: object("VirtualRouterSpec is the desired state of a VirtualRouter (App Mesh API VirtualRouterSpec plus its routes).", fields{
				"awsName": awsName("<name>_<namespace>"),
				"listeners": array("The router's listeners.", object("", fields{
					"portMapping": portMapping(protocols),
				}, "portMapping"), 1, noLimit),
				"routes": array("The router's routes (App Mesh Route resources).", object("", fields{
					"name":       str("The route's name."),
					"priority":   integer("Priority; 0 is the highest.", 0, 1000),
					"httpRoute":  httpRoute("An HTTP route."),
					"http2Route": httpRoute("An HTTP/2 route."),
					"grpcRoute":  grpcRoute(),
					"tcpRoute":   tcpRoute(),
				}, "name"), noLimit, noLimit),
				"meshRef": meshRef(),
			}),
		},
		{
			kind: "VirtualGateway", plural: "virtualgateways", singular: "virtualgateway", arnField: "virtualGatewayARN",
			spec: object("VirtualGatewaySpec is the desired state of a VirtualGateway (App Mesh API VirtualGatewaySpec).", fields{
				"awsName":              awsName("<name>_<namespace>"),
				"namespaceSelector":    labelSelector("Selects the namespaces whose GatewayRoutes may bind to this gateway."),
				"podSelector":          labelSelector("Selects the pods that run this gateway's proxy."),
				"gatewayRouteSelector": labelSelector("Selects the GatewayRoutes of this gateway."),
				"listeners": array("The gateway's listeners.", object("", fields{
					"portMapping":    portMapping(gatewayProtocols),
					"healthCheck":    healthCheck(gatewayProtocols),
					"connectionPool": connectionPool(true),
					"tls":            listenerTLS(true),
				}, "portMapping"), 1, noLimit),
				"logging":         accessLogging(),
				"backendDefaults": backendDefaults(),
				"meshRef":         meshRef(),
			}),
		},
		{
			kind: "GatewayRoute", plural: "gatewayroutes", singular: "gatewayroute", arnField: "gatewayRouteARN",
			spec: object("GatewayRouteSpec is the desired state of a GatewayRoute (App Mesh API GatewayRouteSpec).", fields{
				"awsName":    awsName("<name>_<namespace>"),
				"priority":   integer("Priority; 0 is the highest.", 0, 1000),
				"httpRoute":  gatewayHTTPRoute("An HTTP gateway route."),
				"http2Route": gatewayHTTPRoute("An HTTP/2 gateway route."),
				"grpcRoute":  gatewayGRPCRoute(),
				"virtualGatewayRef": object("The VirtualGateway this route belongs to. Populated by the App Mesh controller's webhook; meshd reads it when present.", fields{
					"name":      str("Name of the VirtualGateway."),
					"namespace": str("Namespace of the VirtualGateway; defaults to the route's namespace."),
					"uid":       str("UID of the VirtualGateway."),
				}, "name", "uid"),
				"meshRef": meshRef(),
			}),
		},
		{
			kind: "BackendGroup", plural: "backendgroups", singular: "backendgroup",
			spec: object("BackendGroupSpec is a set of VirtualServices that VirtualNodes can use as backends together (no App Mesh API counterpart).", fields{
				"virtualservices": array("The virtual services of the group.", ref("VirtualService"), noLimit, noLimit),
				"meshRef":         meshRef(),
			}),
		},
	}
}

func buildCRD(k kindDef) *apiextv1.CustomResourceDefinition {
	scope := apiextv1.NamespaceScoped
	if k.clusterScoped {
		scope = apiextv1.ClusterScoped
	}
	root := object(k.kind+" is the Schema for the "+k.plural+" API.", fields{
		"apiVersion": str("APIVersion defines the versioned schema of this representation of an object."),
		"kind":       str("Kind is a string value representing the REST resource this object represents."),
		"metadata":   {Type: "object"},
		"spec":       k.spec,
		"status":     status(k.kind, k.arnField, k.statusExtra),
	})
	// As upstream (+kubebuilder:pruning:PreserveUnknownFields): unknown
	// top-level fields are kept; unknown fields inside spec are pruned.
	root.XPreserveUnknownFields = new(bool)
	*root.XPreserveUnknownFields = true

	var columns []apiextv1.CustomResourceColumnDefinition
	if k.arnField != "" {
		columns = append(columns, apiextv1.CustomResourceColumnDefinition{
			Name: "ARN", Type: "string", JSONPath: ".status." + k.arnField,
			Description: "The App Mesh " + k.kind + " object's Amazon Resource Name",
		})
	}
	columns = append(columns, apiextv1.CustomResourceColumnDefinition{Name: "AGE", Type: "date", JSONPath: ".metadata.creationTimestamp"})

	return &apiextv1.CustomResourceDefinition{
		TypeMeta: metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   k.plural + "." + appmeshGroup,
			Labels: map[string]string{"app.kubernetes.io/part-of": "meshd"},
		},
		Spec: apiextv1.CustomResourceDefinitionSpec{
			Group: appmeshGroup,
			Names: apiextv1.CustomResourceDefinitionNames{
				Kind: k.kind, ListKind: k.kind + "List", Plural: k.plural, Singular: k.singular,
				Categories: []string{"appmesh"},
			},
			Scope: scope,
			Versions: []apiextv1.CustomResourceDefinitionVersion{{
				Name: appmeshVersion, Served: true, Storage: true,
				Schema:                   &apiextv1.CustomResourceValidation{OpenAPIV3Schema: &root},
				Subresources:             &apiextv1.CustomResourceSubresources{Status: &apiextv1.CustomResourceSubresourceStatus{}},
				AdditionalPrinterColumns: columns,
			}},
		},
	}
}

const crdHeader = "# Generated by `go test ./deploy/k8s -run TestCRDsGenerated -update` from\n# deploy/k8s/crdgen_test.go. DO NOT EDIT.\n"

// renderCRDs returns the files of crds/: one per kind and a kustomization.
func renderCRDs(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var names []string
	for _, k := range kinds() {
		crd := buildCRD(k)
		raw, err := json.Marshal(crd)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "status")
		delete(m["metadata"].(map[string]any), "creationTimestamp")
		y, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		name := appmeshGroup + "_" + k.plural + ".yaml"
		names = append(names, name)
		out[name] = append([]byte(crdHeader), y...)
	}
	sort.Strings(names)
	var kz strings.Builder
	kz.WriteString(crdHeader)
	kz.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n")
	for _, n := range names {
		fmt.Fprintf(&kz, "- %s\n", n)
	}
	out["kustomization.yaml"] = []byte(kz.String())
	return out
}

func TestCRDsGenerated(t *testing.T) {
	want := renderCRDs(t)
	dir := "crds"
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("crds/%s is not generated; remove it", e.Name())
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%v (run go test ./deploy/k8s -run TestCRDsGenerated -update)", err)
			continue
		}
		if string(got) != string(b) {
			t.Errorf("crds/%s is stale: run go test ./deploy/k8s -run TestCRDsGenerated -update", name)
		}
	}
}
