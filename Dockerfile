# walship in a container: a static binary, CA certificates, and nothing else
# (no shell, no package manager), run as a user that is not root.
#
#   docker build -t walship --build-arg VERSION=$(git describe --always) .
#   docker run --rm -v /var/lib/app:/data -v ./walship.yml:/etc/walship.yml:ro walship
#
# contrib/kubernetes/ and contrib/docker-compose.yml show it beside an
# application. contrib/container_test.go runs these entry points the way
# the image does, without a container runtime.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo: SQLite is modernc.org's Go translation) and reproducible.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.Version=${VERSION}" -o /out/walship ./cmd/walship
# A /tmp for SQLite's and the WebDAV backend's temporary files: scratch has
# none.
RUN mkdir -m 1777 /out/tmp
# The database's volume mount point, owned by the image's user, so that a
# named volume mounted there starts out writable by it.
RUN mkdir /out/data

FROM scratch
# The replicas' TLS needs the public CAs; nothing else comes from the build.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/walship /usr/local/bin/walship
COPY --from=build /out/tmp /tmp
COPY --from=build --chown=65532:65532 /out/data /data
# 65532 is distroless's "nonroot". The database's volume must be writable
# by it (Kubernetes: securityContext.fsGroup: 65532).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/walship"]
CMD ["replicate", "-config", "/etc/walship.yml"]
