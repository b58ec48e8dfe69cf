# The hub manager image: a static binary on distroless, running as non-root.
# Build flags match `make build` (HUB_BUILD_FLAGS in the Makefile); a test keeps them equal.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY fleet/ fleet/
COPY internal/version/ internal/version/
ARG VERSION=v0.0.0-dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -X github.com/inferfleet/inferfleet/internal/version.Version=${VERSION}" -o /hub ./cmd/hub

FROM gcr.io/distroless/static:nonroot
COPY --from=build /hub /hub
USER 65532:65532
ENTRYPOINT ["/hub"]
