// Command bare is the floor of testdata/load: a Gin handler that only reads
// the body and answers {"allow":true}. Run it on one core and load it with
// the same wrk script to see what the HTTP exchange alone costs:
//
//	go build -o /tmp/bare ./testdata/load/bare
//	GOMAXPROCS=1 taskset -c 0 /tmp/bare &
//	TOKEN=x taskset -c 1 wrk -t1 -c32 -d20s -s testdata/load/decision.lua http://127.0.0.1:18499/v1/decision
package main

import (
	"io"
	"log"
	"net/http"

	"github.com/gin-gonic/gin"
)

func main() {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/v1/decision", func(c *gin.Context) {
		if _, err := io.Copy(io.Discard, c.Request.Body); err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		c.JSON(http.StatusOK, gin.H{"allow": true})
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:18499", r))
}
