package model

import "github.com/meshd/meshd/internal/appmesh"

// TEMPORARY until appmesh.Validate lands.
func validateSpec(appmesh.ResourceKind, any) []*appmesh.SpecError { return nil }
