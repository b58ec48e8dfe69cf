package controllers_test

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// TestMain sends the hubs' errors, a line each, to stderr, which go test shows when the
// package fails.
func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel),
		zap.StacktraceLevel(zapcore.PanicLevel), zap.ConsoleEncoder()))
	os.Exit(m.Run())
}
