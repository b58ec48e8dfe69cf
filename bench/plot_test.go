package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"
)

// The propagation plot: seconds from create to Ready against the number of services created
// at once (log scale), p50 solid and p99 dashed, one colour per fleet size. Drawn with the
// standard library only, text included (a 3x5 pixel font).

const (
	plotW, plotH                       = 720, 420
	marginL, marginR, marginT, marginB = 60, 20, 40, 44
	fontScale                          = 2
)

var (
	white   = color.RGBA{255, 255, 255, 255}
	black   = color.RGBA{0, 0, 0, 255}
	grey    = color.RGBA{215, 215, 215, 255}
	palette = []color.RGBA{{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}, {255, 127, 14, 255}}
)

// font is a 3x5 pixel font for the characters the plot writes.
var font = map[rune][5]string{
	'0': {"###", "#.#", "#.#", "#.#", "###"}, '1': {".#.", "##.", ".#.", ".#.", "###"},
	'2': {"###", "..#", "###", "#..", "###"}, '3': {"###", "..#", ".##", "..#", "###"},
	'4': {"#.#", "#.#", "###", "..#", "..#"}, '5': {"###", "#..", "###", "..#", "###"},
	'6': {"###", "#..", "###", "#.#", "###"}, '7': {"###", "..#", ".#.", ".#.", ".#."},
	'8': {"###", "#.#", "###", "#.#", "###"}, '9': {"###", "#.#", "###", "..#", "###"},
	'.': {"...", "...", "...", "...", ".#."}, '=': {"...", "###", "...", "###", "..."},
	'/': {"..#", "..#", ".#.", "#..", "#.."}, '(': {".#.", "#..", "#..", "#..", ".#."},
	')': {".#.", "..#", "..#", "..#", ".#."}, '-': {"...", "...", "###", "...", "..."},
	' ': {"...", "...", "...", "...", "..."}, ',': {"...", "...", "...", ".#.", "#.."},
	'a': {"...", "##.", ".##", "#.#", "###"}, 'b': {"#..", "#..", "###", "#.#", "###"},
	'c': {"...", "###", "#..", "#..", "###"}, 'd': {"..#", "..#", "###", "#.#", "###"},
	'e': {"...", "###", "###", "#..", "###"}, 'h': {"#..", "#..", "###", "#.#", "#.#"},
	'i': {".#.", "...", ".#.", ".#.", ".#."}, 'l': {"#..", "#..", "#..", "#..", "##."},
	'm': {"...", "###", "###", "#.#", "#.#"}, 'n': {"...", "##.", "#.#", "#.#", "#.#"},
	'o': {"...", "###", "#.#", "#.#", "###"}, 'p': {"...", "###", "#.#", "###", "#.."},
	'r': {"...", "###", "#..", "#..", "#.."}, 's': {"...", "###", "##.", "..#", "###"},
	't': {".#.", "###", ".#.", ".#.", ".##"}, 'u': {"...", "#.#", "#.#", "#.#", "###"},
	'v': {"...", "#.#", "#.#", "#.#", ".#."}, 'y': {"...", "#.#", "###", "..#", "###"},
	'f': {".##", "#..", "###", "#..", "#.."}, 'g': {"...", "###", "#.#", ".##", "##."},
	'k': {"#..", "#.#", "##.", "#.#", "#.#"}, 'w': {"...", "#.#", "#.#", "###", "###"},
	'x': {"...", "#.#", ".#.", "#.#", "#.#"},
	'C': {"###", "#..", "#..", "#..", "###"}, 'M': {"#.#", "###", "###", "#.#", "#.#"},
	'R': {"##.", "#.#", "##.", "#.#", "#.#"}, 'T': {"###", ".#.", ".#.", ".#.", ".#."},
}

type canvas struct{ *image.RGBA }

func (c canvas) text(x, y int, s string, col color.Color) {
	for _, r := range s {
		g, ok := font[r]
		if !ok {
			g = font[' ']
		}
		for row, line := range g {
			for dx, p := range line {
				if p != '#' {
					continue
				}
				for sy := range fontScale {
					for sx := range fontScale {
						c.Set(x+dx*fontScale+sx, y+row*fontScale+sy, col)
					}
				}
			}
		}
		x += 4 * fontScale
	}
}

func textWidth(s string) int { return len([]rune(s)) * 4 * fontScale }

// line draws a 2-pixel line; dash > 0 leaves every other run of dash pixels out.
func (c canvas) line(x0, y0, x1, y1 int, col color.Color, dash int) {
	steps := max(abs(x1-x0), abs(y1-y0), 1)
	for i := 0; i <= steps; i++ {
		if dash > 0 && (i/dash)%2 == 1 {
			continue
		}
		x := x0 + (x1-x0)*i/steps
		y := y0 + (y1-y0)*i/steps
		c.Set(x, y, col)
		c.Set(x+1, y, col)
		c.Set(x, y+1, col)
		c.Set(x+1, y+1, col)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// niceCeil rounds v up to a round multiple of a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// Plot draws the propagation plot.
func (r *Results) Plot() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, plotW, plotH))
	c := canvas{img}
	for y := range plotH {
		for x := range plotW {
			img.Set(x, y, white)
		}
	}
	minK, maxK, maxY := math.MaxInt, 0, 0.0
	for _, f := range r.Fleets {
		for _, p := range f.Propagation {
			minK, maxK = min(minK, p.Services), max(maxK, p.Services)
			maxY = max(maxY, p.Ready.P99)
		}
	}
	x0, x1, y0, y1 := marginL, plotW-marginR, plotH-marginB, marginT
	title := "seconds from create to Ready, p50 solid, p99 dashed"
	c.text((plotW-textWidth(title))/2, 12, title, black)
	xlabel := "services created at once"
	c.text((plotW-textWidth(xlabel))/2, plotH-14, xlabel, black)
	if maxK == 0 {
		return img
	}
	top := niceCeil(maxY)
	xOf := func(k int) int {
		if maxK == minK {
			return (x0 + x1) / 2
		}
		f := (math.Log10(float64(k)) - math.Log10(float64(minK))) / (math.Log10(float64(maxK)) - math.Log10(float64(minK)))
		return x0 + int(f*float64(x1-x0-20)) + 10
	}
	yOf := func(v float64) int { return y0 - int(v/top*float64(y0-y1)) }
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		y := yOf(v)
		c.line(x0, y, x1, y, grey, 0)
		label := strconv.FormatFloat(v, 'f', -1, 64)
		c.text(x0-8-textWidth(label), y-5, label, black)
	}
	seenK := map[int]bool{}
	for _, f := range r.Fleets {
		for _, p := range f.Propagation {
			if !seenK[p.Services] {
				seenK[p.Services] = true
				x := xOf(p.Services)
				c.line(x, y0, x, y0+4, black, 0)
				label := strconv.Itoa(p.Services)
				c.text(x-textWidth(label)/2, y0+8, label, black)
			}
		}
	}
	c.line(x0, y0, x1, y0, black, 0)
	c.line(x0, y0, x0, y1, black, 0)
	for i, f := range r.Fleets {
		col := palette[i%len(palette)]
		for j := 1; j < len(f.Propagation); j++ {
			a, b := f.Propagation[j-1], f.Propagation[j]
			c.line(xOf(a.Services), yOf(a.Ready.P50), xOf(b.Services), yOf(b.Ready.P50), col, 0)
			c.line(xOf(a.Services), yOf(a.Ready.P99), xOf(b.Services), yOf(b.Ready.P99), col, 5)
		}
		for _, p := range f.Propagation {
			x, y := xOf(p.Services), yOf(p.Ready.P50)
			for d := -3; d <= 3; d++ {
				c.line(x-3, y+d, x+3, y+d, col, 0)
			}
		}
		ly := y1 + 8 + 16*i
		c.line(x0+12, ly+4, x0+36, ly+4, col, 0)
		c.text(x0+44, ly, fmt.Sprintf("%d members", f.Members), col)
	}
	return img
}

// WritePlot stores the propagation plot as a PNG.
func (r *Results) WritePlot(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, r.Plot()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
