//go:build !goolm

package matrix

import (
	"context"
	"errors"
)

func (a *Adapter) newE2EE(context.Context) (e2ee, error) {
	return nil, errors.New("matrix.encryption: this build has no end-to-end encryption; build with -tags goolm")
}
