# A small static image of the homeostat binary: the controller, and the
# binary the operators copy into PostgreSQL and CI pods.
#   docker build -t registry.example.com/homeostat:v0.1.0 --build-arg VERSION=v0.1.0 .
FROM golang:1.26-bookworm AS build
ENV GOTOOLCHAIN=go1.27.3 CGO_ENABLED=0 GOFLAGS=-buildvcs=false
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/homeostat ./cmd/homeostat

# distroless/static has CA certificates and /etc/passwd with the nonroot user,
# and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/homeostat /homeostat
USER 65532:65532
ENTRYPOINT ["/homeostat"]
CMD ["controller"]
