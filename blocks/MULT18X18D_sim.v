// Behavioural simulation model of the Lattice ECP5 MULT18X18D multiplier (cnn_ip).
//
// No simulation model of this primitive ships with the open tools here, so the project
// carries its own.  It models the multiplier path only: operands A and B (signed or
// unsigned per SIGNEDA / SIGNEDB), the product P (36 bits) and SIGNEDP, with the input,
// pipeline and output registers either bypassed ("NONE") or clocked by CLK0 with CE0 and
// RST0 (RESETMODE "SYNC": reset takes effect on the clock edge, over the enable).
// Anything else (C input, shift sources, cascades, CLK1..3, asynchronous reset) stops the
// simulation at time 0 rather than being simulated wrongly.  Registers start unknown, as
// with GSR "DISABLED".  Simulators and lint read this file; synthesis does not (Yosys has
// the primitive as a black box), which is why it lives in a file ending in _sim.v.
//
// The port list is the primitive's own (one port per bit), so that the same instance
// serves both.  Pins outside the modelled path are accepted and ignored.
// Lint: the file is named for its role (_sim.v), not its module; pins outside the modelled
// path are unused by design.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSED */
`timescale 1ns/10ps  // as MyHDL writes it: lint (TIMESCALEMOD) wants every module or none to have one
module MULT18X18D (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0,
    input SRIA17, SRIA16, SRIA15, SRIA14, SRIA13, SRIA12, SRIA11, SRIA10, SRIA9,
    input SRIA8, SRIA7, SRIA6, SRIA5, SRIA4, SRIA3, SRIA2, SRIA1, SRIA0,
    input SRIB17, SRIB16, SRIB15, SRIB14, SRIB13, SRIB12, SRIB11, SRIB10, SRIB9,
    input SRIB8, SRIB7, SRIB6, SRIB5, SRIB4, SRIB3, SRIB2, SRIB1, SRIB0,
    output SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9,
    output SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0,
    output SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9,
    output SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0,
    output ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9,
    output ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0,
    output ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9,
    output ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0,
    output ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9,
    output ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24,
    output P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12,
    output P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0,
    output SIGNEDP
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    // One flag per register: clocked (1) or bypassed (0).
    localparam IN_A = REG_INPUTA_CLK == "CLK0";
    localparam IN_B = REG_INPUTB_CLK == "CLK0";
    localparam PIPE = REG_PIPELINE_CLK == "CLK0";
    localparam OUT = REG_OUTPUT_CLK == "CLK0";

    // Refuse the features this model does not simulate.
    initial begin
        if ((REG_INPUTA_CLK != "NONE" && !IN_A) || (REG_INPUTB_CLK != "NONE" && !IN_B)
                || (REG_PIPELINE_CLK != "NONE" && !PIPE) || (REG_OUTPUT_CLK != "NONE" && !OUT)
                || (IN_A && (REG_INPUTA_CE != "CE0" || REG_INPUTA_RST != "RST0"))
                || (IN_B && (REG_INPUTB_CE != "CE0" || REG_INPUTB_RST != "RST0"))
                || (PIPE && (REG_PIPELINE_CE != "CE0" || REG_PIPELINE_RST != "RST0"))
                || (OUT && (REG_OUTPUT_CE != "CE0" || REG_OUTPUT_RST != "RST0"))
                || RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED"
                || REG_INPUTC_CLK != "NONE" || HIGHSPEED_CLK != "NONE"
                || CAS_MATCH_REG != "FALSE") begin
            $display("MULT18X18D_sim.v: %m uses a configuration this model does not simulate");
            $finish;
        end
    end

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};

    // Input registers hold the operand together with its sign mode, as the primitive does.
    reg [18:0] a_q, b_q;
    wire [18:0] a_in = {SIGNEDA, a};
    wire [18:0] b_in = {SIGNEDB, b};
    always @(posedge CLK0) begin
        if (RST0) begin
            a_q <= 19'd0;
            b_q <= 19'd0;
        end else if (CE0) begin
            a_q <= a_in;
            b_q <= b_in;
        end
    end
    wire [18:0] a_op = IN_A ? a_q : a_in;
    wire [18:0] b_op = IN_B ? b_q : b_in;

    // Each operand extended to 19 bits by its own sign mode; the 38-bit product of two
    // 19-bit signed values holds every 18x18 product, signed or unsigned.
    wire signed [18:0] a_ext = {a_op[18] & a_op[17], a_op[17:0]};
    wire signed [18:0] b_ext = {b_op[18] & b_op[17], b_op[17:0]};
    wire signed [37:0] full = a_ext * b_ext;
    wire [36:0] product = {a_op[18] | b_op[18], full[35:0]};

    reg [36:0] pipe_q, out_q;
    always @(posedge CLK0) begin
        if (RST0) begin
            pipe_q <= 37'd0;
            out_q <= 37'd0;
        end else if (CE0) begin
            pipe_q <= product;
            out_q <= PIPE ? pipe_q : product;
        end
    end
    wire [36:0] pipe_op = PIPE ? pipe_q : product;
    wire [36:0] result = OUT ? out_q : pipe_op;

    assign {SIGNEDP, P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24,
            P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12,
            P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = result;
    // Register outputs of the shift chain and the cascade: the operands as registered.
    assign {SROA17, SROA16, SROA15, SROA14, SROA13, SROA12, SROA11, SROA10, SROA9,
            SROA8, SROA7, SROA6, SROA5, SROA4, SROA3, SROA2, SROA1, SROA0} = a_op[17:0];
    assign {SROB17, SROB16, SROB15, SROB14, SROB13, SROB12, SROB11, SROB10, SROB9,
            SROB8, SROB7, SROB6, SROB5, SROB4, SROB3, SROB2, SROB1, SROB0} = b_op[17:0];
    assign {ROA17, ROA16, ROA15, ROA14, ROA13, ROA12, ROA11, ROA10, ROA9,
            ROA8, ROA7, ROA6, ROA5, ROA4, ROA3, ROA2, ROA1, ROA0} = a_op[17:0];
    assign {ROB17, ROB16, ROB15, ROB14, ROB13, ROB12, ROB11, ROB10, ROB9,
            ROB8, ROB7, ROB6, ROB5, ROB4, ROB3, ROB2, ROB1, ROB0} = b_op[17:0];
    assign {ROC17, ROC16, ROC15, ROC14, ROC13, ROC12, ROC11, ROC10, ROC9,
            ROC8, ROC7, ROC6, ROC5, ROC4, ROC3, ROC2, ROC1, ROC0} = 18'd0;
endmodule
/* verilator lint_on UNUSED */
/* verilator lint_on DECLFILENAME */
