// Package examples embeds the example App Mesh definitions shipped with
// meshd, so `meshd demo` works from an installed binary too.
package examples

import "embed"

// Apps is the getting-started mesh of the App Mesh user guide (mesh apps:
// serviceA calling serviceb.apps.local, routed 75/25 to serviceB and
// serviceBv2), under apps/.
//
//go:embed apps/*.json apps/*.yaml
var Apps embed.FS
